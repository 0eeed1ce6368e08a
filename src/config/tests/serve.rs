//! `serve`: its defaults, what `show` prints of it, and each bad value's message.

use std::path::PathBuf;

use super::*;

/// A folder and a file that exist wherever the tests run.
const FOLDER: &str = env!("CARGO_MANIFEST_DIR");
const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");

fn with(domain: &str) -> String {
    format!("listeners:\n  - addr: 127.0.0.1:8080\ndomains:\n  - hosts: [a.com]\n{domain}")
}

#[test]
fn defaults_and_every_key() {
    let c = ok(&with(&format!(
        "    serve: {{ root: {FOLDER} }}\n    routes:\n      - {{ path_prefix: /s/, serve: {{ root: {FOLDER}, index: [home.htm, index.html], spa: true, browse: true, precompressed: [zstd, br, gzip], cache_control: \"public, max-age=60\" }} }}\n"
    )));
    let Action::Serve(s) = &c.domains[0].handling.action else {
        panic!("{:?}", c.domains[0].handling.action)
    };
    assert_eq!(
        *s,
        Serve {
            root: PathBuf::from(FOLDER),
            index: vec!["index.html".into()],
            spa: false,
            browse: false,
            precompressed: vec![],
            cache_control: None,
        }
    );
    let Action::Serve(s) = &c.domains[0].routes[0].handling.action else {
        panic!()
    };
    assert_eq!(s.index, ["home.htm", "index.html"]);
    assert!(s.spa && s.browse);
    assert_eq!(
        s.precompressed,
        [Encoding::Zstd, Encoding::Br, Encoding::Gzip]
    );
    assert_eq!(s.cache_control.as_deref(), Some("public, max-age=60"));
    assert!(c.pools.is_empty());

    // `show` prints it so that it loads back the same.
    let shown = show_yaml(&c);
    assert!(shown.contains("serve: { root: "), "{shown}");
    let again = load_str(&shown, "shown", &env).unwrap_or_else(|e| panic!("{e:?}\n{shown}"));
    assert_eq!(
        show_yaml(&again).lines().skip(1).collect::<Vec<_>>(),
        shown.lines().skip(1).collect::<Vec<_>>()
    );
}

#[test]
fn bad_roots() {
    let text = with(&format!(
        "    routes:
      - {{ path_prefix: /a, serve: {{ index: [x.html] }} }}
      - {{ path_prefix: /b, serve: {{ root: /nonexistent/strait-www }} }}
      - {{ path_prefix: /c, serve: {{ root: {FILE} }} }}
      - {{ path_prefix: /d, serve: {{ root: \"\" }} }}
      - {{ path_prefix: /e, serve: /var/www }}
"
    ));
    assert_eq!(
        errors(&text),
        [
            "t.yaml:6:35: domains[0].routes[0].serve: missing field `root`".to_string(),
            "t.yaml:7:43: domains[0].routes[1].serve.root: folder /nonexistent/strait-www does not exist".to_string(),
            format!("t.yaml:8:43: domains[0].routes[2].serve.root: {FILE} is not a folder"),
            "t.yaml:9:43: domains[0].routes[3].serve.root: expected a file path, found an empty string".to_string(),
            "t.yaml:10:35: domains[0].routes[4].serve: expected a mapping, found \"/var/www\"".to_string(),
        ]
    );
}

#[test]
fn bad_values() {
    let text = with(&format!(
        "    serve:
      root: {FOLDER}
      index: []
      precompressed: [br, deflate, br]
      spa: yes
      browse: 1
      cache_control: \"a\\nb\"
      gzip: true
"
    ));
    assert_eq!(
        errors(&text),
        [
            "t.yaml:7:14: domains[0].serve.index: expected at least one file name like index.html, found an empty list",
            "t.yaml:8:27: domains[0].serve.precompressed[1]: unknown value \"deflate\", expected one of: br, gzip, zstd",
            "t.yaml:8:36: domains[0].serve.precompressed[2]: br is listed twice",
            "t.yaml:9:12: domains[0].serve.spa: expected true or false, found \"yes\"",
            "t.yaml:10:15: domains[0].serve.browse: expected true or false, found \"1\"",
            "t.yaml:11:22: domains[0].serve.cache_control: expected a header value like \"public, max-age=60\", found \"a\\nb\"",
            "t.yaml:12:7: domains[0].serve: unknown field `gzip`, expected one of: root, index, spa, browse, precompressed, cache_control",
        ]
    );
    let text = with(&format!(
        "    serve: {{ root: {FOLDER}, index: [a/b.html, \"..\", ok.html] }}\n"
    ));
    let got = errors(&text);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].ends_with("domains[0].serve.index[0]: expected a file name like index.html (no folders), found \"a/b.html\""),
        "{got:?}"
    );
    assert!(got[1].contains("serve.index[1]"), "{got:?}");
}

#[test]
fn serve_excludes_backends_and_other_answers() {
    let text = with(&format!(
        "    serve: {{ root: {FOLDER} }}
    backends: [http://127.0.0.1:3000]
    routes:
      - {{ path_prefix: /r, serve: {{ root: {FOLDER} }}, respond: {{ status: 200 }} }}
      - {{ path_prefix: /d, serve: {{ root: {FOLDER} }}, drop: true }}
"
    ));
    let got = errors(&text);
    assert!(
        got.iter()
            .any(|l| l.ends_with("domains[0].serve: serve cannot be combined with `backends`")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|l| l
                .ends_with("domains[0].routes[0].serve: serve cannot be combined with `respond`")),
        "{got:?}"
    );
    assert!(
        got.iter().any(|l| l.ends_with("domains[0].routes[1].drop: drop cannot be combined with `serve`")),
        "{got:?}"
    );
    assert_eq!(got.len(), 3, "{got:?}");
}
