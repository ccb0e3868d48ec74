# Included after a PostgreSQL module's own Makefile (built with PGXS) by
# scripts/contrib-check.sh: `isospec-check` runs the module's isolation
# specs in check mode exactly as its `make check` does --
# Makefile.global's pg_isolation_regress_check with the module's
# ISOLATION_OPTS and ISOLATION -- with top_srcdir naming the source tree the
# module came from (its ISOLATION_OPTS name files there).  The caller puts
# isospec in place of pg_isolation_regress on make's command line.
isospec-check: top_srcdir = $(ISOSPEC_SRCDIR)
isospec-check:
	$(pg_isolation_regress_check) $(ISOLATION_OPTS) $(ISOLATION)
