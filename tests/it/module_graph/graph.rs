//! Resolves every path a crate's code names to the file that defines it, and finds
//! the cycles of the resulting file graph (see the rule in `module_graph.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use super::tree::{Crate, ModId};

/// Re-export chains longer than this are a loop (`pub use a::X` in b, `pub use b::X` in a).
const MAX_HOPS: usize = 32;

/// What a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A module: the file it lives in.
    Module(ModId),
    /// An item defined in this module's file (or a name we could not find there,
    /// which macro-generated items are: they live where the macro was invoked).
    Item(ModId),
    /// Another crate (std, tokio...).
    External,
}

/// File -> files it imports, each with the first source text that made the edge.
pub type Graph = BTreeMap<PathBuf, BTreeMap<PathBuf, String>>;

/// The file-level import graph of production code (test-only code makes no edges).
pub fn build(krate: &Crate) -> Graph {
    let mut graph = Graph::new();
    for file in &krate.files {
        graph.entry(file.clone()).or_default();
    }
    for r in &krate.refs {
        let from = &krate.modules[r.module];
        if r.test_only || from.test_only {
            continue;
        }
        let to = match resolve(krate, r.module, &r.path, 0) {
            Target::Module(m) | Target::Item(m) => &krate.modules[m],
            Target::External => continue,
        };
        if to.file != from.file && !to.test_only {
            graph
                .entry(from.file.clone())
                .or_default()
                .entry(to.file.clone())
                .or_insert_with(|| r.text.clone());
        }
    }
    graph
}

/// Resolves `path` as written in module `from`.
fn resolve(krate: &Crate, from: ModId, path: &[String], hops: usize) -> Target {
    let Some((first, rest)) = path.split_first() else {
        return Target::Module(from);
    };
    let mut current = match first.as_str() {
        "crate" | "$crate" => Target::Module(0),
        "self" => Target::Module(from),
        "super" => Target::Module(krate.modules[from].parent.unwrap_or(0)),
        // 2018 paths: a name in this module's scope, else another crate's name.
        name => lookup(krate, from, name, hops).unwrap_or(Target::External),
    };
    for segment in rest {
        current = match current {
            Target::Module(m) if segment == "super" => {
                Target::Module(krate.modules[m].parent.unwrap_or(0))
            }
            Target::Module(m) if segment == "self" => Target::Module(m),
            Target::Module(m) => lookup(krate, m, segment, hops).unwrap_or(Target::Item(m)),
            // Past an item come its variants, associated items or fields.
            done => return done,
        };
    }
    current
}

/// A name in module `m`: a child module, an item defined there, or a name it
/// imports (followed to where that name is defined), or one of its globs brings.
fn lookup(krate: &Crate, m: ModId, name: &str, hops: usize) -> Option<Target> {
    let module = &krate.modules[m];
    if let Some(&child) = module.children.get(name) {
        return Some(Target::Module(child));
    }
    if module.items.contains(name) {
        return Some(Target::Item(m));
    }
    if hops >= MAX_HOPS {
        return Some(Target::Item(m));
    }
    let imports = module
        .imports
        .iter()
        .filter(|i| !i.test_only || module.test_only);
    for import in imports.clone() {
        if import.binding.as_deref() == Some(name) {
            return Some(resolve(krate, m, &import.path, hops + 1));
        }
    }
    for import in imports.filter(|i| i.binding.is_none()) {
        if let Target::Module(g) = resolve(krate, m, &import.path, hops + 1) {
            if g != m {
                if let Some(found) = lookup(krate, g, name, hops + 1) {
                    return Some(found);
                }
            }
        }
    }
    None
}

/// Each group of files that reach each other (a strongly connected component of
/// more than one file), as one cycle through its first file, spelled out.
pub fn cycles(graph: &Graph) -> Vec<Cycle> {
    components(graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|files| {
            let path = shortest_cycle(graph, &files);
            let steps = path
                .windows(2)
                .map(|w| (w[0].clone(), w[1].clone(), graph[&w[0]][&w[1]].clone()))
                .collect();
            Cycle { files, steps }
        })
        .collect()
}

/// Files that import each other, and one cycle among them.
#[derive(Debug)]
pub struct Cycle {
    /// Every file of the tangle.
    pub files: BTreeSet<PathBuf>,
    /// One cycle through the tangle's first file: (from, to, the source text).
    pub steps: Vec<(PathBuf, PathBuf, String)>,
}

impl std::fmt::Display for Cycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut chain = self.steps.iter().map(|(a, _, _)| a.display().to_string());
        let first = chain.next().unwrap_or_default();
        write!(f, "{first}")?;
        for file in chain {
            write!(f, " -> {file}")?;
        }
        writeln!(f, " -> {first}")?;
        for (from, to, text) in &self.steps {
            writeln!(f, "    {} -> {}: {text}", from.display(), to.display())?;
        }
        if self.files.len() > self.steps.len() {
            let all: Vec<_> = self.files.iter().map(|p| p.display().to_string()).collect();
            writeln!(f, "    (the whole tangle: {})", all.join(", "))?;
        }
        Ok(())
    }
}

/// Tarjan's strongly connected components.
fn components(graph: &Graph) -> Vec<BTreeSet<PathBuf>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g PathBuf, usize>,
        low: BTreeMap<&'g PathBuf, usize>,
        stack: Vec<&'g PathBuf>,
        on_stack: BTreeSet<&'g PathBuf>,
        out: Vec<BTreeSet<PathBuf>>,
    }
    fn connect<'g>(s: &mut State<'g>, v: &'g PathBuf) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !s.index.contains_key(w) {
                connect(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.clone());
                if w == v {
                    break;
                }
            }
            s.out.push(component);
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            connect(&mut s, v);
        }
    }
    s.out.sort();
    s.out
}

/// The shortest way from the component's first file back to itself, inside it.
fn shortest_cycle(graph: &Graph, files: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let Some(start) = files.iter().next() else {
        return Vec::new();
    };
    let mut came_from: BTreeMap<&PathBuf, &PathBuf> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v].keys().filter(|w| files.contains(*w)) {
            if w == start {
                let mut path = vec![start.clone()];
                let mut at = v;
                while at != start {
                    path.push(at.clone());
                    at = came_from[at];
                }
                path.push(start.clone());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    vec![start.clone(), start.clone()]
}
