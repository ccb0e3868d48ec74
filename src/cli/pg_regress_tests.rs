//! Tests of the drop-in's option parsing and run preparation.

use super::*;

fn args(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

fn run(s: &[&str]) -> RegressArgs {
    match parse(&args(s)).unwrap() {
        Request::Run(r) => *r,
        other => panic!("{other:?}"),
    }
}

#[test]
fn values_with_equals_or_as_the_next_argument() {
    let r = run(&["--inputdir=in", "--outputdir", "out", "t1", "--debug", "t2"]);
    assert_eq!(r.inputdir, "in");
    assert_eq!(r.outputdir, "out");
    assert!(r.debug);
    assert_eq!(r.tests, ["t1", "t2"]);
    // A required value is taken even when it looks like an option.
    assert_eq!(run(&["--dbname", "--x"]).dbnames, ["--x"]);
}

#[test]
fn unique_prefixes_abbreviate_and_ambiguous_ones_are_refused() {
    assert_eq!(run(&["--load-ext=pg_trgm"]).load_extensions, ["pg_trgm"]);
    assert!(run(&["--use-e"]).use_existing);
    assert!(parse(&args(&["--use"])).is_err());
    assert_eq!(run(&["--temp-i=x"]).temp_instance.as_deref(), Some("x"));
    let e = parse(&args(&["--load=x"])).unwrap_err();
    assert!(
        e.contains("ambiguous") && e.contains("'--load-language'"),
        "{e}"
    );
    let e = parse(&args(&["--temp=x"])).unwrap_err();
    assert!(e.contains("'--temp-instance' '--temp-config'"), "{e}");
    // An exact name wins over longer names it prefixes.
    assert_eq!(run(&["--host=h"]).host.as_deref(), Some("h"));
}

#[test]
fn last_one_wins_and_lists_accumulate() {
    let r = run(&[
        "--inputdir=a",
        "--inputdir=b",
        "--outputdir=x",
        "--outputdir=y",
        "--dbname=one",
        "--dbname=two,three",
        "--temp-config=c1",
        "--temp-config",
        "c2",
        "--schedule=s1",
        "--schedule=s2",
        "--create-role=r1,r2",
        "--create-role=r3",
        "--load-extension=e1",
        "--load-extension=e2",
    ]);
    assert_eq!(r.inputdir, "b");
    assert_eq!(r.outputdir, "y");
    assert_eq!(r.dbnames, ["two", "three"]);
    assert_eq!(r.temp_configs, ["c1", "c2"]);
    assert_eq!(r.schedules, ["s1", "s2"]);
    assert_eq!(r.create_roles, ["r1", "r2", "r3"]);
    assert_eq!(r.load_extensions, ["e1", "e2"]);
}

#[test]
fn empty_bindir_means_path_and_every_option_is_accepted() {
    assert_eq!(run(&["--bindir="]).bindir.as_deref(), Some(""));
    let r = run(&[
        "--encoding=UTF8",
        "--no-locale",
        "--create-role=x",
        "--max-connections=5",
        "--max-concurrent-tests=20",
        "--launcher=valgrind",
        "--dlpath=.",
        "--config-auth=d",
        "--debug",
        "--load-language=plpgsql",
        "--make-testtablespace-dir",
        "--expecteddir=e",
        "--host=h",
        "--port=5433",
        "--user=u",
        "--use-existing",
        "--temp-instance=t",
    ]);
    assert_eq!(r.max_connections, 5);
    assert_eq!(r.max_concurrent_tests, 20);
    assert!(r.no_locale && r.make_testtablespace_dir && r.use_existing);
    assert_eq!(r.expecteddir.as_deref(), Some("e"));
    for o in LONG_OPTIONS {
        let flag = format!("--{}", o.name);
        let mut a = vec![flag];
        if o.arg == HasArg::Required {
            a.push("v".into());
        }
        assert!(parse(&a).is_ok(), "{a:?}");
    }
}

#[test]
fn help_version_and_errors() {
    assert_eq!(parse(&args(&["-h"])).unwrap(), Request::Help);
    assert_eq!(parse(&args(&["--vers"])).unwrap(), Request::Version);
    assert_eq!(parse(&args(&["-V"])).unwrap(), Request::Version);
    assert_eq!(
        parse(&args(&["--bogus"])).unwrap_err(),
        "unrecognized option '--bogus'"
    );
    assert_eq!(
        parse(&args(&["--debug=1"])).unwrap_err(),
        "option '--debug' doesn't allow an argument"
    );
    assert_eq!(
        parse(&args(&["--dbname"])).unwrap_err(),
        "option '--dbname' requires an argument"
    );
    assert_eq!(parse(&args(&["-x"])).unwrap_err(), "invalid option -- 'x'");
    assert_eq!(
        parse(&args(&["--dbname="])).unwrap_err(),
        "no database name was specified"
    );
    assert_eq!(run(&["--", "--debug"]).tests, ["--debug"]);
}

#[test]
fn atoi_like_c() {
    assert_eq!(crate::c_atoi::atoi("20"), 20);
    assert_eq!(crate::c_atoi::atoi(" 7x"), 7);
    assert_eq!(crate::c_atoi::atoi("x"), 0);
    assert_eq!(crate::c_atoi::atoi("-3"), -3);
}

#[test]
fn specs_and_expected_files_are_found_as_isolation_main_does() {
    let d = std::env::temp_dir().join(format!("isospec-pgr-{}", std::process::id()));
    let input = d.join("in");
    let output = d.join("out");
    for sub in [
        input.join("specs"),
        input.join("expected"),
        output.join("specs"),
        output.join("expected"),
    ] {
        std::fs::create_dir_all(sub).unwrap();
    }
    std::fs::write(output.join("specs/b.spec"), "").unwrap();
    std::fs::write(output.join("expected/b.out"), "").unwrap();
    let r = RegressArgs {
        inputdir: input.display().to_string(),
        outputdir: output.display().to_string(),
        tests: vec!["a".into(), "b".into()],
        ..Default::default()
    };
    let t = test_cases(&r).unwrap();
    assert_eq!(t[0].spec_path, input.join("specs/a.spec"));
    assert_eq!(t[0].expected_dir, input.join("expected"));
    assert_eq!(t[1].spec_path, output.join("specs/b.spec"));
    assert_eq!(t[1].expected_dir, output.join("expected"));
    assert_ne!(t[0].group, t[1].group);
    std::fs::write(d.join("sched"), "test: a b c\n").unwrap();
    let r = RegressArgs {
        schedules: vec![d.join("sched").display().to_string()],
        max_concurrent_tests: 2,
        ..r
    };
    let e = test_cases(&r).unwrap_err();
    assert!(e.contains("too many parallel tests (more than 2)"), "{e}");
    std::fs::remove_dir_all(&d).unwrap();
}
