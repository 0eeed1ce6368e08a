//! `domains`: host patterns, the domain's pool and what its unmatched requests get.

use super::answer;
use super::backend::backends;
use super::fields::{item_path, list, string, Errors, Fields};
use super::handling;
use super::l4;
use super::options;
use super::pool;
use super::route::{routes, Parent};
use crate::config::keys::Section;
use crate::config::model::{
    Action, CacheSettings, Domain, HostPattern, Listener, PoolConfig, Pos, L4,
};
use crate::config::yaml::Node;

/// Where something was: the file (the main one or an included one) and the position.
type At = (String, Pos);

/// State shared across all domains of the file.
struct Seen<'a> {
    /// The names of the file's `plugins` (what `plugins` lists may name).
    plugins: &'a [String],
    /// Each host so far, with where it was (file, position) and the listeners its domain
    /// answers on.
    hosts: Vec<(HostPattern, At, Option<Vec<usize>>)>,
    /// Whether `cluster.etcd` is set (what `discovery.etcd` needs).
    etcd: bool,
}

/// Decodes `domains` lists, the main file's and included files' (`Some(file)`: problems are
/// reported in that file), into domains and the pools they reference. Hosts are unique across
/// all of them.
pub(super) fn domains(
    e: &mut Errors,
    parts: &[(Option<&str>, &Node)],
    global_cache: Option<&CacheSettings>,
    listeners: &[Listener],
    plugins: &[String],
    etcd: bool,
) -> (Vec<PoolConfig>, Vec<Domain>) {
    let mut pools = Vec::new();
    let mut out = Vec::new();
    let mut seen = Seen {
        plugins,
        hosts: Vec::new(),
        etcd,
    };
    for (file, node) in parts {
        let main = file.map(|f| e.set_file(f));
        let Some(items) = list(e, node, "domains") else {
            if let Some(main) = main {
                e.set_file(&main);
            }
            continue;
        };
        if items.is_empty() && parts.len() == 1 {
            e.push(node.pos, "domains", "at least one domain is required");
        }
        for (i, item) in items.iter().enumerate() {
            let path = item_path("domains", i);
            if let Some(d) = domain(
                e,
                item,
                &path,
                global_cache,
                listeners,
                &mut seen,
                &mut pools,
            ) {
                out.push(d);
            }
        }
        if let Some(main) = main {
            e.set_file(&main);
        }
    }
    (pools, out)
}

fn domain(
    e: &mut Errors,
    node: &Node,
    path: &str,
    global_cache: Option<&CacheSettings>,
    listeners: &[Listener],
    seen: &mut Seen,
    pools: &mut Vec<PoolConfig>,
) -> Option<Domain> {
    let f = Fields::new(e, node, path, Section::Domain)?;
    f.require(e, "hosts");
    let scope = f
        .get("listeners")
        .map(|n| listener_scope(e, n, &f.path("listeners"), listeners));
    let hosts = f
        .get("hosts")
        .map(|n| hosts(e, n, &f.path("hosts"), seen, scope.as_ref()))
        .unwrap_or_default();
    let name = hosts
        .first()
        .map(|(_, text)| text.clone())
        .unwrap_or_default();
    let policy = pool::policy(e, &f, None);
    let discovery = f
        .get("discovery")
        .and_then(|n| super::discovery::discovery(e, n, &f.path("discovery"), seen.etcd));
    // DNS discovery fills the pool (so it cannot be combined with `backends`); etcd discovery
    // adds backends beside those written here. Either way the domain has a pool even when it
    // writes no backends.
    // Read from the file, not the decoded value: a `dns` with bad values is still DNS.
    let dns = f.get("discovery").and_then(|n| n.get("dns")).is_some();
    let backend_list = match (f.get("backends"), dns) {
        (Some(n), true) => {
            e.push(
                n.pos,
                &f.path("backends"),
                "backends cannot be combined with discovery.dns, which fills the pool",
            );
            None
        }
        (Some(n), false) => Some(backends(e, n, &f.path("backends"))),
        (None, _) => discovery.as_ref().map(|_| Vec::new()),
    };
    let proxy_options = options::read(e, &f).apply(&options::defaults());
    let answer = answer::answer(e, &f, pool::KEYS, 0);

    let pass = f
        .get("pass")
        .and_then(|n| l4::read(e, n, &f.path("pass"), name.clone()))
        .map(|(pool, mut pass)| {
            l4::exclusive(
                e,
                &f,
                "pass",
                l4::NOT_WITH_PASS,
                "strait relays this domain's TLS connections and never sees its requests",
            );
            pass_needs_tls(e, &f, &pass, scope.as_ref(), listeners, node.pos);
            pass.pool = pools.len();
            pools.push(pool);
            pass
        });
    let pool = backend_list.map(|backends| {
        pools.push(PoolConfig {
            name: name.clone(),
            backends,
            policy: policy.clone(),
        });
        pools.len() - 1
    });
    let action = match (answer, pool) {
        (Some(answer), _) => answer,
        (None, Some(pool)) => Action::Proxy {
            pool,
            options: proxy_options.clone(),
        },
        (None, None) => Action::NotFound,
    };
    let plugins = seen.plugins;
    let handling = handling::read(e, &f, action, None, global_cache, 0, plugins);
    let parent = Parent {
        name: &name,
        pool,
        policy: &policy,
        options: &proxy_options,
        handling: &handling,
        global_cache,
        listeners,
        scope: scope.as_ref(),
        plugins,
    };
    let routes = f
        .get("routes")
        .map(|n| routes(e, n, &f.path("routes"), &parent, pools))
        .unwrap_or_default();
    Some(Domain {
        hosts: hosts.into_iter().map(|(pattern, _)| pattern).collect(),
        listeners: scope,
        handling,
        routes,
        pass,
        pos: node.pos,
        discovery,
    })
}

/// A `pass` domain needs a TLS listener to pass through: every listener it is scoped to, or
/// at least one when it answers on all.
fn pass_needs_tls(
    e: &mut Errors,
    f: &Fields,
    pass: &L4,
    scope: Option<&Vec<usize>>,
    listeners: &[Listener],
    fallback: Pos,
) {
    let at = l4::pass_pos(pass, fallback);
    match scope {
        Some(scope) => {
            for &i in scope {
                if let Some(l) = listeners.get(i).filter(|l| l.tls.is_none()) {
                    e.push(
                        at,
                        &f.path("pass"),
                        format!(
                            "listener {:?} has no `tls`: pass relays TLS connections by their SNI, so it needs a TLS listener",
                            l.name.as_deref().unwrap_or("?")
                        ),
                    );
                }
            }
        }
        None if !listeners.iter().any(|l| l.tls.is_some()) => e.push(
            at,
            &f.path("pass"),
            "no listener has `tls`: pass relays TLS connections by their SNI, so it needs a TLS listener",
        ),
        None => {}
    }
}

/// `listeners: [web, ...]`: indices of named listeners.
pub(super) fn listener_scope(
    e: &mut Errors,
    node: &Node,
    path: &str,
    listeners: &[Listener],
) -> Vec<usize> {
    let mut out = Vec::new();
    for (i, item) in list(e, node, path).unwrap_or_default().iter().enumerate() {
        let item_path = item_path(path, i);
        let Some(name) = string(e, item, &item_path) else {
            continue;
        };
        match listeners
            .iter()
            .position(|l| l.name.as_deref() == Some(name.as_str()))
        {
            Some(index) if listeners[index].tcp.is_some() => e.push(
                item.pos,
                &item_path,
                format!("listener {name:?} relays TCP (`tcp`): no domain answers on it"),
            ),
            Some(index) if !out.contains(&index) => out.push(index),
            Some(_) => {}
            None => {
                let mut known: Vec<&str> =
                    listeners.iter().filter_map(|l| l.name.as_deref()).collect();
                known.dedup();
                e.push(
                    item.pos,
                    &item_path,
                    if known.is_empty() {
                        format!("unknown listener {name:?}: no listener has a `name`")
                    } else {
                        format!(
                            "unknown listener {name:?}, expected one of: {}",
                            known.join(", ")
                        )
                    },
                );
            }
        }
    }
    out
}

/// `line N` in the file being read, `FILE:N` in another (an included file).
fn where_first(e: &Errors, (file, pos): &(String, Pos)) -> String {
    if file == e.file() {
        format!("line {}", pos.line)
    } else {
        format!("{file}:{}", pos.line)
    }
}

/// Whether two listener scopes (`None`: every listener) share a listener.
pub(super) fn overlap(a: Option<&Vec<usize>>, b: Option<&Vec<usize>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().any(|i| b.contains(i)),
        _ => true,
    }
}

/// Host patterns with their lower-cased text (used to name pools). A host may appear in two
/// domains only when they answer on different listeners.
fn hosts(
    e: &mut Errors,
    node: &Node,
    path: &str,
    seen: &mut Seen,
    scope: Option<&Vec<usize>>,
) -> Vec<(HostPattern, String)> {
    let Some(items) = list(e, node, path) else {
        return Vec::new();
    };
    if items.is_empty() {
        e.push(node.pos, path, "at least one host is required");
    }
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let item_path = item_path(path, i);
        let Some(text) = string(e, item, &item_path) else {
            continue;
        };
        let pattern = match HostPattern::parse(&text) {
            Ok(p) => p,
            Err(message) => {
                e.push(item.pos, &item_path, message);
                continue;
            }
        };
        if let Some((_, first, _)) = seen
            .hosts
            .iter()
            .find(|(p, _, other)| *p == pattern && overlap(other.as_ref(), scope))
        {
            let at = where_first(e, first);
            e.push(
                item.pos,
                &item_path,
                format!(
                    "duplicate host {:?} (first at {at})",
                    text.to_ascii_lowercase()
                ),
            );
            continue;
        }
        // Equally specific patterns that can match one name: file order would decide, so
        // the user must.
        let tie = seen.hosts.iter().find(|(p, _, other)| {
            !matches!(p, HostPattern::Exact(_) | HostPattern::Any)
                && !matches!(pattern, HostPattern::Exact(_) | HostPattern::Any)
                && p.specificity() == pattern.specificity()
                && p.overlaps(&pattern)
                && overlap(other.as_ref(), scope)
        });
        if let Some((p, first, _)) = tie {
            let at = where_first(e, first);
            e.push(
                item.pos,
                &item_path,
                format!(
                    "host pattern {:?} and {:?} ({at}) are equally specific and can match the same name: make one more specific",
                    pattern.text(),
                    p.text(),
                ),
            );
            continue;
        }
        seen.hosts.push((
            pattern.clone(),
            (e.file().to_string(), item.pos),
            scope.cloned(),
        ));
        out.push((pattern, text.to_ascii_lowercase()));
    }
    out
}
