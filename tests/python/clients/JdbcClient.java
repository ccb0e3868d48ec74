// pgjdbc with prepareThreshold=1 (server-side prepared statements from the
// first execution): a holder updates a row in a transaction, a waiter
// updates it too from another thread and waits, the holder commits.
// Connects to the proxy that isospec record names in PG* variables.
import java.sql.*;

public class JdbcClient {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + System.getenv("PGHOST") + ":" + System.getenv("PGPORT") + "/"
            + System.getenv("PGDATABASE") + "?prepareThreshold=1&sslmode=disable";
        String user = System.getenv("PGUSER");
        java.util.Properties p = new java.util.Properties();
        p.setProperty("user", user);
        p.setProperty("ApplicationName", "holder");
        Connection holder = DriverManager.getConnection(url, p);
        p.setProperty("ApplicationName", "waiter");
        Connection waiter = DriverManager.getConnection(url, p);
        p.setProperty("ApplicationName", "watch");
        Connection watch = DriverManager.getConnection(url, p);
        holder.setAutoCommit(false);
        try (PreparedStatement st = holder.prepareStatement("UPDATE acct SET n = n + ? WHERE id = ?")) {
            st.setInt(1, 1);
            st.setInt(2, 1);
            st.executeUpdate();
        }
        Thread t = new Thread(() -> {
            try (PreparedStatement st = waiter.prepareStatement("UPDATE acct SET n = n * ? WHERE id = ?")) {
                st.setInt(1, 10);
                st.setInt(2, 1);
                st.executeUpdate();
            } catch (SQLException e) {
                throw new RuntimeException(e);
            }
        });
        t.start();
        // Wait until the waiter waits for the holder's lock (a state, not a time).
        try (PreparedStatement st = watch.prepareStatement(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'waiter' AND wait_event_type = 'Lock'")) {
            while (true) {
                try (ResultSet r = st.executeQuery()) {
                    r.next();
                    if (r.getInt(1) > 0) break;
                }
                Thread.sleep(10);
            }
        }
        holder.commit();
        t.join();
        try (PreparedStatement st = watch.prepareStatement("SELECT n FROM acct WHERE id = ?")) {
            st.setInt(1, 1);
            try (ResultSet r = st.executeQuery()) {
                r.next();
                System.out.println("n=" + r.getInt(1));
            }
        }
        holder.close();
        waiter.close();
        watch.close();
    }
}
