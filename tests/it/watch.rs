//! `server.watch: true`: an editor-style save (write a temporary file, rename it over the
//! config) reloads; a broken save keeps the old config serving and logs its errors once, however
//! often it is saved again.

use std::fs;
use std::time::Duration;

use crate::support::{backends, config, eventually_msg, served_by, Origin, Strait};

fn watch_config(backend_list: &str) -> String {
    config(&format!(
        "server:\n  watch: true\n\
         domains:\n  - hosts: [\"*\"]\n    backends: {backend_list}\n"
    ))
}

/// Saves `text` as an editor does: a temporary file in the same folder, renamed over.
fn editor_save(s: &Strait, text: &str) {
    let tmp = s.dir().join(".strait.yaml.swp");
    fs::write(&tmp, text).expect("write the temporary file");
    fs::rename(&tmp, s.config_path()).expect("rename over the config");
}

#[test]
fn editor_saves_reload_and_broken_saves_keep_the_old_config() {
    let a = Origin::plain("a");
    let b = Origin::plain("b");
    let s = Strait::start(&watch_config(&backends(&[&a])));
    assert!(
        s.stderr_contains("watching", Duration::from_secs(10)),
        "{}",
        s.stderr()
    );
    assert_eq!(served_by(&s.get("w.test", "/")), "a");

    let text = fs::read_to_string(s.config_path()).expect("read config");
    editor_save(&s, &text.replace(&backends(&[&a]), &backends(&[&b])));
    eventually_msg(Duration::from_secs(10), "the reload after the save", || {
        s.stderr_has("config reloaded")
    });
    assert_eq!(served_by(&s.get("w.test", "/")), "b");

    // A broken save: the running config stays, the errors are logged once...
    let good = fs::read_to_string(s.config_path()).expect("read config");
    let broken = good.replace("backends:", "backend:");
    editor_save(&s, &broken);
    eventually_msg(Duration::from_secs(10), "the rejected reload", || {
        s.stderr_has("reload rejected with")
    });
    assert_eq!(served_by(&s.get("w.test", "/")), "b");
    // ...and not again when the same broken content is saved again.
    editor_save(&s, &broken);
    eventually_msg(Duration::from_secs(10), "the repeat noticed", || {
        s.stderr_has("saved again with the errors already reported")
    });
    editor_save(&s, &good.replace(&backends(&[&b]), &backends(&[&a, &b])));
    eventually_msg(Duration::from_secs(10), "the second reload", || {
        s.stderr().matches("config reloaded").count() >= 2
    });
    assert_eq!(
        s.stderr().matches("reload rejected with").count(),
        1,
        "a broken file is reported once per distinct content:\n{}",
        s.stderr()
    );
}
