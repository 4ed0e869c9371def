//! Which plugins of a set load, and in what order: the host's version range, dependencies by
//! semver, conflicts (declared, by name, by exclusive event claims), and a topological order over
//! dependencies, `before` and `after` with `priority` breaking ties (lower first, then the name).
//! Pure: `stockade plan` and [`crate::host::Host`] both take their answer from [`plan`].

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde::Serialize;

use crate::code::Code;
use crate::manifest::Manifest;

/// A plugin offered for loading, with its manifest.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Where it came from, for messages (a path).
    pub origin: String,
    pub manifest: Manifest,
}

/// A plugin refused before planning (vetting said no), so that what depends on it is refused
/// too, with the reason.
#[derive(Clone, Debug)]
pub struct Refused {
    pub name: String,
    pub problem: Problem,
}

/// Why a plugin does not load.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: Code,
    pub message: String,
    /// Every plugin involved, the one refused first.
    pub plugins: Vec<String>,
}

/// The plan: the plugins that load, in order, and the problems of the others.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Plan {
    pub order: Vec<String>,
    pub problems: Vec<Problem>,
}

impl Plan {
    pub fn loads_everything(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Planner<'a> {
    by_name: BTreeMap<&'a str, &'a Candidate>,
    /// Refused, with the problem already reported.
    out: BTreeSet<String>,
    problems: Vec<Problem>,
}

impl Planner<'_> {
    fn refuse(&mut self, name: &str, code: Code, message: String, plugins: Vec<String>) {
        self.out.insert(name.to_string());
        self.problems.push(Problem { code, message, plugins });
    }

    fn live(&self) -> Vec<&str> {
        self.by_name.keys().copied().filter(|n| !self.out.contains(*n)).collect()
    }
}

/// Plans the loading of `candidates` (and of `refused`, which never load).
pub fn plan(candidates: &[Candidate], refused: &[Refused]) -> Plan {
    let mut problems: Vec<Problem> = refused.iter().map(|r| r.problem.clone()).collect();
    // The same name twice: which one is meant cannot be told, so none of them loads.
    let refused_names: BTreeSet<&str> = refused.iter().map(|r| r.name.as_str()).collect();
    let mut seen: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        seen.entry(c.manifest.name.as_str()).or_default().push(c);
    }
    let mut by_name = BTreeMap::new();
    let mut out: BTreeSet<String> = refused_names.iter().map(|n| n.to_string()).collect();
    for (name, list) in seen {
        if list.len() == 1 && !refused_names.contains(name) {
            by_name.insert(name, list[0]);
            continue;
        }
        let mut origins: Vec<&str> = list.iter().map(|c| c.origin.as_str()).collect();
        if refused_names.contains(name) {
            origins.push("one that was refused");
        }
        problems.push(Problem {
            code: Code::Conflict,
            message: format!("more than one plugin is named `{name}` ({}); none of them is loaded", origins.join(", ")),
            plugins: vec![name.to_string()],
        });
        out.insert(name.to_string());
    }
    let mut planner = Planner { by_name, out, problems };
    declared_conflicts(&mut planner);
    exclusive_claims(&mut planner);
    loop {
        dependencies(&mut planner);
        match order(&planner) {
            Ok(order) => {
                return Plan { order, problems: planner.problems };
            }
            Err(cycles) => {
                for mut cycle in cycles {
                    // Read as dependencies are written: each needs (loads after) the next.
                    cycle.reverse();
                    let names = cycle.join(" → ");
                    let members: Vec<String> = cycle[..cycle.len() - 1].to_vec();
                    planner.out.extend(members.iter().cloned());
                    planner.problems.push(Problem {
                        code: Code::DependencyCycle,
                        message: format!("{names}: each must load after the next (dependencies, `before`, `after`); none of them is loaded"),
                        plugins: members,
                    });
                }
            }
        }
    }
}

fn declared_conflicts(p: &mut Planner<'_>) {
    let mut found = Vec::new();
    for name in p.live() {
        let c = p.by_name[name];
        for other in &c.manifest.conflicts {
            if other != name && p.by_name.contains_key(other.as_str()) && !p.out.contains(other) {
                found.push((name.to_string(), other.clone()));
            }
        }
    }
    for (name, other) in found {
        let message = format!("`{name}` declares a conflict with `{other}`, which is in the set; `{name}` is not loaded");
        p.refuse(&name, Code::Conflict, message, vec![name.clone(), other]);
    }
}

fn exclusive_claims(p: &mut Planner<'_>) {
    let mut claims: BTreeMap<&str, Vec<(i32, &str)>> = BTreeMap::new();
    for name in p.live() {
        let c = p.by_name[name];
        for sub in c.manifest.events.iter().filter(|s| s.exclusive) {
            claims.entry(sub.event.as_str()).or_default().push((c.manifest.priority, name));
        }
    }
    let mut refusals = Vec::new();
    for (event, mut list) in claims {
        list.sort();
        let (_, holder) = list[0];
        for (_, later) in &list[1..] {
            refusals.push((
                later.to_string(),
                format!("`{later}` claims the event type `{event}` exclusively, and `{holder}` already does; `{later}` is not loaded"),
                vec![later.to_string(), holder.to_string()],
            ));
        }
    }
    for (name, message, plugins) in refusals {
        p.refuse(&name, Code::Conflict, message, plugins);
    }
}

/// Refuses every plugin whose dependency is missing, refused or of another version, until
/// nothing changes (a refusal can leave another plugin's dependency missing). In waves: the
/// plugins still in, then those that depend on a plugin the last wave refused, each wave in
/// name order; a plugin is checked again only when one of its dependencies was refused, so the
/// whole is linear in plugins and dependencies.
fn dependencies(p: &mut Planner<'_>) {
    let mut dependents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for name in p.live() {
        for dep in p.by_name[name].manifest.dependencies.keys() {
            dependents.entry(dep.clone()).or_default().push(name.to_string());
        }
    }
    let mut wave: BTreeSet<String> = p.live().into_iter().map(str::to_string).collect();
    while !wave.is_empty() {
        let mut refusals = Vec::new();
        for name in &wave {
            if p.out.contains(name) {
                continue;
            }
            let c = p.by_name[name.as_str()];
            for (dep, req) in &c.manifest.dependencies {
                let problem = match p.by_name.get(dep.as_str()) {
                    _ if p.out.contains(dep) => Some((Code::DependencyMissing, format!("`{name}` needs `{dep}` {req}, which is not loaded (see its problem)"))),
                    None => Some((Code::DependencyMissing, format!("`{name}` needs `{dep}` {req}, which is not in the set"))),
                    Some(found) if !req.matches(&found.manifest.version) => Some((
                        Code::DependencyIncompatible,
                        format!("`{name}` needs `{dep}` {req}; the set has `{dep}` {}", found.manifest.version),
                    )),
                    Some(_) => None,
                };
                if let Some((code, message)) = problem {
                    refusals.push((name.clone(), code, message, vec![name.clone(), dep.clone()]));
                    break;
                }
            }
        }
        wave = BTreeSet::new();
        for (name, code, message, plugins) in refusals {
            wave.extend(dependents.get(&name).into_iter().flatten().filter(|d| !p.out.contains(*d)).cloned());
            p.refuse(&name, code, message, plugins);
        }
    }
}

/// The load order of the plugins still in, or the cycles that prevent one (each as its names,
/// the first repeated at the end).
fn order(p: &Planner<'_>) -> Result<Vec<String>, Vec<Vec<String>>> {
    let live = p.live();
    let index: BTreeMap<&str, usize> = live.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); live.len()];
    for (i, name) in live.iter().enumerate() {
        let m = &p.by_name[name].manifest;
        for dep in m.dependencies.keys().chain(&m.after) {
            if let Some(&j) = index.get(dep.as_str()) {
                edges[j].insert(i);
            }
        }
        for later in &m.before {
            if let Some(&j) = index.get(later.as_str()) {
                edges[i].insert(j);
            }
        }
    }
    let mut incoming = vec![0usize; live.len()];
    for targets in &edges {
        for &t in targets {
            incoming[t] += 1;
        }
    }
    let key = |i: usize| Reverse((p.by_name[live[i]].manifest.priority, live[i]));
    let mut ready: BinaryHeap<(Reverse<(i32, &str)>, usize)> = (0..live.len()).filter(|&i| incoming[i] == 0).map(|i| (key(i), i)).collect();
    let mut order = Vec::with_capacity(live.len());
    while let Some((_, i)) = ready.pop() {
        order.push(live[i].to_string());
        for &t in &edges[i] {
            incoming[t] -= 1;
            if incoming[t] == 0 {
                ready.push((key(t), t));
            }
        }
    }
    if order.len() == live.len() {
        return Ok(order);
    }
    let left: BTreeSet<usize> = (0..live.len()).filter(|&i| incoming[i] > 0).collect();
    Err(cycles(&edges, &left).into_iter().map(|c| c.into_iter().map(|i| live[i].to_string()).collect()).collect())
}

/// One cycle through each strongly connected component (of two or more nodes, or a node with an
/// edge to itself) among `left`, as a path that returns to its start: the component's first
/// node, by the shortest way back. The components come from Tarjan's algorithm, without
/// recursion (a chain of 10,000 plugins is as deep), so the whole is linear in nodes and edges.
fn cycles(edges: &[BTreeSet<usize>], left: &BTreeSet<usize>) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = edges.len();
    let in_left: Vec<bool> = (0..n).map(|i| left.contains(&i)).collect();
    let successors: Vec<Vec<usize>> = edges.iter().map(|targets| targets.iter().copied().filter(|&t| in_left[t]).collect()).collect();
    let (mut index, mut low, mut on_stack) = (vec![UNSEEN; n], vec![0usize; n], vec![false; n]);
    let mut component_of = vec![UNSEEN; n];
    let mut components: Vec<Vec<usize>> = Vec::new();
    let mut stack = Vec::new();
    let mut next = 0;
    for &root in left {
        if index[root] != UNSEEN {
            continue;
        }
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        let mut calls = vec![(root, 0usize)];
        while let Some(&mut (v, ref mut position)) = calls.last_mut() {
            if let Some(&w) = successors[v].get(*position) {
                *position += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component_of[w] = components.len();
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                components.push(component);
            }
        }
    }
    let mut starts: Vec<(usize, usize)> = components
        .iter()
        .enumerate()
        .filter(|(_, c)| c.len() > 1 || edges[c[0]].contains(&c[0]))
        .map(|(id, c)| (*c.iter().min().expect("a component has a node"), id))
        .collect();
    starts.sort_unstable();
    let mut found = Vec::new();
    for (start, id) in starts {
        // A shortest way back to `start` inside its component (breadth first).
        let mut parent: BTreeMap<usize, usize> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        'search: while let Some(n) = queue.pop_front() {
            for &t in &successors[n] {
                if t == start {
                    end = Some(n);
                    break 'search;
                }
                if component_of[t] == id && !parent.contains_key(&t) {
                    parent.insert(t, n);
                    queue.push_back(t);
                }
            }
        }
        let mut path = vec![start];
        let mut n = end.expect("a component of a cycle leads back to its start");
        let mut back = Vec::new();
        while n != start {
            back.push(n);
            n = parent[&n];
        }
        path.extend(back.into_iter().rev());
        path.push(start);
        found.push(path);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Origin;

    /// A candidate from a manifest's TOML after its name and version.
    fn c(name: &str, version: &str, rest: &str) -> Candidate {
        let text = format!("name = \"{name}\"\nversion = \"{version}\"\nexports = [\"on_chat\", \"run\"]\n{rest}");
        Candidate { origin: format!("{name}/plugin.toml"), manifest: Manifest::from_toml(&text, Origin::File(format!("{name}.toml"))).unwrap() }
    }

    fn codes(plan: &Plan) -> Vec<(Code, Vec<&str>)> {
        plan.problems.iter().map(|p| (p.code, p.plugins.iter().map(String::as_str).collect())).collect()
    }

    #[test]
    fn order_follows_dependencies_before_after_then_priority_and_name() {
        let set = [
            c("gen", "1.0.0", "priority = -5\n[dependencies]\nopt = \"^1\"\n"),
            c("opt", "1.2.0", "after = [\"parse\"]\n"),
            c("parse", "1.0.0", "priority = 50\n"),
            c("lint-b", "1.0.0", "priority = 10\n"),
            c("lint-a", "1.0.0", "priority = 10\nbefore = [\"parse\"]\n"),
            c("zz-first", "1.0.0", "priority = -100\n"),
        ];
        let plan = plan(&set, &[]);
        assert!(plan.loads_everything(), "{plan:?}");
        // zz-first by priority; lint-a before parse (before); lint-b by priority 10 before
        // parse's 50; opt after parse; gen after opt although its priority is lowest.
        assert_eq!(plan.order, ["zz-first", "lint-a", "lint-b", "parse", "opt", "gen"]);
        // `before`/`after` naming an absent plugin are orderings, not requirements.
        let plan = super::plan(&[c("a", "1.0.0", "before = [\"ghost\"]\nafter = [\"spirit\"]\n")], &[]);
        assert_eq!((plan.order, plan.problems), (vec!["a".to_string()], vec![]));
    }

    /// Ten thousand plugins: a chain of dependencies as deep as the set (no recursion to run
    /// out of stack), a circle of a thousand, and a chain of missing dependencies refused wave by
    /// wave. Linear work (Tarjan's components, dependents checked again only when one of their
    /// dependencies is refused); before, the search for cycles was cubic (1,202 plugins took
    /// 22 s to plan).
    #[test]
    fn ten_thousand_plugins_in_chains_and_circles_are_planned() {
        let mut set = Vec::new();
        for i in 0..6000 {
            let rest = if i == 0 { String::new() } else { format!("[dependencies]\nchain-{:05} = \"*\"\n", i - 1) };
            set.push(c(&format!("chain-{i:05}"), "1.0.0", &rest));
        }
        for i in 0..1000 {
            set.push(c(&format!("circle-{i:04}"), "1.0.0", &format!("after = [\"circle-{:04}\"]\n", (i + 1) % 1000)));
        }
        for i in 0..3000 {
            set.push(c(&format!("orphan-{i:04}"), "1.0.0", &format!("[dependencies]\norphan-{:04} = \"*\"\n", i + 1)));
        }
        let plan = plan(&set, &[]);
        assert_eq!(plan.order.len(), 6000, "the whole chain loads");
        assert_eq!(plan.order.first().map(String::as_str), Some("chain-00000"));
        assert_eq!(plan.order.last().map(String::as_str), Some("chain-05999"));
        let count = |code| plan.problems.iter().filter(|p| p.code == code).count();
        assert_eq!(count(Code::DependencyCycle), 1);
        assert_eq!(count(Code::DependencyMissing), 3000, "each orphan, the last missing its dependency and the rest theirs");
        let cycle = plan.problems.iter().find(|p| p.code == Code::DependencyCycle).unwrap();
        assert_eq!(cycle.plugins.len(), 1000, "the whole circle");
    }

    #[test]
    fn cycles_of_dependencies_and_of_orderings_name_the_whole_circle() {
        let set = [
            c("a", "1.0.0", "[dependencies]\nb = \"*\"\n"),
            c("b", "1.0.0", "[dependencies]\nc = \"*\"\n"),
            c("c", "1.0.0", "[dependencies]\na = \"*\"\n"),
            c("d", "1.0.0", "[dependencies]\na = \"*\"\n"),
            c("x", "1.0.0", "before = [\"y\"]\n"),
            c("y", "1.0.0", "before = [\"x\"]\n"),
            c("after-x", "1.0.0", "after = [\"x\"]\n"),
            c("me", "1.0.0", "after = [\"me\"]\n"),
            c("fine", "1.0.0", ""),
        ];
        let plan = plan(&set, &[]);
        let messages: Vec<&str> = plan.problems.iter().map(|p| p.message.as_str()).collect();
        assert!(messages.iter().any(|m| m.starts_with("a → b → c → a:")), "{messages:?}");
        assert!(messages.iter().any(|m| m.starts_with("x → y → x:")), "{messages:?}");
        assert!(messages.iter().any(|m| m.starts_with("me → me:")), "{messages:?}");
        // d needs a, which is in the cycle: missing, not part of the cycle.
        assert!(codes(&plan).contains(&(Code::DependencyMissing, vec!["d", "a"])), "{plan:?}");
        // after-x only wanted to load after x: with x out, it loads.
        assert_eq!(plan.order, ["after-x", "fine"]);
        assert_eq!(plan.problems.iter().filter(|p| p.code == Code::DependencyCycle).count(), 3);
    }

    #[test]
    fn missing_and_incompatible_dependencies_and_what_hangs_on_them() {
        let set = [
            c("app", "1.0.0", "[dependencies]\nlib = \"^2\"\n"),
            c("lib", "1.4.0", ""),
            c("tool", "1.0.0", "[dependencies]\nnowhere = \"^1\"\n"),
            c("uses-tool", "1.0.0", "[dependencies]\ntool = \"^1\"\n"),
            c("uses-refused", "1.0.0", "[dependencies]\nbad = \"*\"\n"),
        ];
        let refused = [Refused {
            name: "bad".into(),
            problem: Problem { code: Code::CapabilityDenied, message: "bad: denied".into(), plugins: vec!["bad".into()] },
        }];
        let plan = plan(&set, &refused);
        let found = codes(&plan);
        assert!(found.contains(&(Code::DependencyIncompatible, vec!["app", "lib"])), "{found:?}");
        assert!(found.contains(&(Code::DependencyMissing, vec!["tool", "nowhere"])), "{found:?}");
        assert!(found.contains(&(Code::DependencyMissing, vec!["uses-tool", "tool"])), "{found:?}");
        assert!(found.contains(&(Code::DependencyMissing, vec!["uses-refused", "bad"])), "{found:?}");
        assert!(found.contains(&(Code::CapabilityDenied, vec!["bad"])));
        assert!(plan.problems.iter().any(|p| p.message.contains("`app` needs `lib` ^2; the set has `lib` 1.4.0")));
        assert_eq!(plan.order, ["lib"]);
    }

    #[test]
    fn conflicts_declared_by_name_and_by_exclusive_claims() {
        let set = [
            c("linter", "1.0.0", "conflicts = [\"old-linter\"]\n"),
            c("old-linter", "1.0.0", ""),
            c("chat-a", "1.0.0", "priority = 5\n[[events]]\ntype = \"chat\"\nhandler = \"on_chat\"\nexclusive = true\n"),
            c("chat-b", "1.0.0", "priority = 1\n[[events]]\ntype = \"chat\"\nhandler = \"on_chat\"\nexclusive = true\n"),
            c("listener", "1.0.0", "[[events]]\ntype = \"chat\"\nhandler = \"on_chat\"\n"),
            c("twin", "1.0.0", ""),
            c("twin", "2.0.0", ""),
            c("absent-conflict", "1.0.0", "conflicts = [\"not-here\"]\n"),
        ];
        let plan = plan(&set, &[]);
        let found = codes(&plan);
        assert!(found.contains(&(Code::Conflict, vec!["linter", "old-linter"])), "{found:?}");
        // The lower priority claims first; the other is refused.
        assert!(found.contains(&(Code::Conflict, vec!["chat-a", "chat-b"])), "{found:?}");
        assert!(found.contains(&(Code::Conflict, vec!["twin"])), "{found:?}");
        // chat-b's priority 1 puts it after the others' 0.
        assert_eq!(plan.order, ["absent-conflict", "listener", "old-linter", "chat-b"]);
    }
}
