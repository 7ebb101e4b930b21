//! Reads a crate's source with `syn` into its module tree: which file each module
//! lives in, the names each module defines or imports, and every path its code names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::{self, Visit};

pub type ModId = usize;

/// One module: a file, or an inline `mod x { .. }` inside one.
#[derive(Debug)]
pub struct Module {
    pub parent: Option<ModId>,
    /// The file, relative to the source directory (`store/history.rs`).
    pub file: PathBuf,
    /// Only compiled for tests (`#[cfg(test)]`, or inside such a module).
    pub test_only: bool,
    pub children: BTreeMap<String, ModId>,
    /// Names of items defined here (types, functions, constants, macros...).
    pub items: BTreeSet<String>,
    /// `use` bindings at module level; `binding: None` is a glob (`use x::*`).
    pub imports: Vec<Import>,
}

#[derive(Debug)]
pub struct Import {
    pub binding: Option<String>,
    pub path: Vec<String>,
    pub test_only: bool,
}

/// A path named somewhere in a module's code or `use` declarations.
#[derive(Debug)]
pub struct Ref {
    pub module: ModId,
    pub path: Vec<String>,
    /// What the source says, for messages: `use super::Error`, `crate::x::f`.
    pub text: String,
    pub test_only: bool,
}

/// A whole crate: modules (the root is 0), the paths its code names, and the files read.
#[derive(Debug)]
pub struct Crate {
    pub modules: Vec<Module>,
    pub refs: Vec<Ref>,
    pub files: BTreeSet<PathBuf>,
}

/// Reads the crate whose root file is `src/root` (say `lib.rs`), following
/// `mod x;` declarations (and `#[path]`) to every file it is made of.
pub fn load(src: &Path, root: &str) -> Result<Crate, String> {
    let mut krate = Crate {
        modules: vec![Module::new(None, PathBuf::from(root), false)],
        refs: Vec::new(),
        files: BTreeSet::new(),
    };
    load_file(&mut krate, src, 0, Path::new(""))?;
    Ok(krate)
}

impl Module {
    fn new(parent: Option<ModId>, file: PathBuf, test_only: bool) -> Self {
        Module {
            parent,
            file,
            test_only,
            children: BTreeMap::new(),
            items: BTreeSet::new(),
            imports: Vec::new(),
        }
    }
}

/// Parses the file of module `id`; `dir` is where its child modules' files live.
fn load_file(krate: &mut Crate, src: &Path, id: ModId, dir: &Path) -> Result<(), String> {
    let file = krate.modules[id].file.clone();
    let text = std::fs::read_to_string(src.join(&file))
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let ast =
        syn::parse_file(&text).map_err(|e| format!("cannot parse {}: {e}", file.display()))?;
    krate.files.insert(file.clone());
    let test = krate.modules[id].test_only;
    let mut walker = Walker {
        krate,
        src,
        module: id,
        dir: dir.to_path_buf(),
        file_dir: file.parent().unwrap_or(Path::new("")).to_path_buf(),
        inline: false,
        test,
        blocks: 0,
        error: None,
    };
    walker.visit_file(&ast);
    match walker.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct Walker<'a> {
    krate: &'a mut Crate,
    src: &'a Path,
    module: ModId,
    /// Where the current module's child files live.
    dir: PathBuf,
    /// The directory of the file being read (`#[path]` is relative to it).
    file_dir: PathBuf,
    /// Inside an inline `mod x { .. }` of this file.
    inline: bool,
    /// Inside test-only code.
    test: bool,
    /// Inside a function body or other block: names there are not the module's.
    blocks: usize,
    error: Option<String>,
}

/// `#[cfg(test)]`, `#[cfg(all(test, ..))]`, or a `#[test]`-like attribute.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        let path = a.path();
        if path.is_ident("cfg") {
            let tokens = match &a.meta {
                syn::Meta::List(list) => list.tokens.to_string().replace(' ', ""),
                _ => return false,
            };
            tokens == "test" || (tokens.starts_with("all(") && idents(&tokens).any(|i| i == "test"))
        } else {
            path.segments.last().is_some_and(|s| s.ident == "test")
        }
    })
}

fn idents(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item::*;
    match item {
        Const(i) => &i.attrs,
        Enum(i) => &i.attrs,
        ExternCrate(i) => &i.attrs,
        Fn(i) => &i.attrs,
        ForeignMod(i) => &i.attrs,
        Impl(i) => &i.attrs,
        Macro(i) => &i.attrs,
        Mod(i) => &i.attrs,
        Static(i) => &i.attrs,
        Struct(i) => &i.attrs,
        Trait(i) => &i.attrs,
        TraitAlias(i) => &i.attrs,
        Type(i) => &i.attrs,
        Union(i) => &i.attrs,
        Use(i) => &i.attrs,
        _ => &[],
    }
}

fn defined_name(item: &syn::Item) -> Option<String> {
    use syn::Item::*;
    let ident = match item {
        Const(i) => &i.ident,
        Enum(i) => &i.ident,
        Fn(i) => &i.sig.ident,
        Macro(i) => i.ident.as_ref()?,
        Static(i) => &i.ident,
        Struct(i) => &i.ident,
        Trait(i) => &i.ident,
        TraitAlias(i) => &i.ident,
        Type(i) => &i.ident,
        Union(i) => &i.ident,
        _ => return None,
    };
    Some(ident.to_string())
}

/// Every (path, binding) a `use` tree brings in; a glob has no binding.
fn flatten(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, Option<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) if n.ident == "self" => {
            let binding = prefix.last().cloned();
            out.push((prefix.clone(), binding));
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((path, Some(n.ident.to_string())));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push((path, Some(r.rename.to_string())));
        }
        syn::UseTree::Glob(_) => out.push((prefix.clone(), None)),
        syn::UseTree::Group(g) => {
            for tree in &g.items {
                flatten(tree, prefix, out);
            }
        }
    }
}

impl Walker<'_> {
    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }

    fn add_ref(&mut self, path: Vec<String>, text: String) {
        self.krate.refs.push(Ref {
            module: self.module,
            path,
            text,
            test_only: self.test,
        });
    }

    /// `mod name;`: finds its file, reads it as a child module.
    fn file_module(&mut self, m: &syn::ItemMod, test: bool) {
        let name = m.ident.to_string();
        let explicit = m.attrs.iter().find_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) if nv.path.is_ident("path") => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        });
        let (file, child_dir) = match explicit {
            Some(p) => {
                let base = if self.inline {
                    &self.dir
                } else {
                    &self.file_dir
                };
                let file = base.join(p);
                let stem = file.file_stem().unwrap_or_default().to_os_string();
                let dir = file.parent().unwrap_or(Path::new("")).join(stem);
                (file, dir)
            }
            None => {
                let flat = self.dir.join(format!("{name}.rs"));
                let nested = self.dir.join(&name).join("mod.rs");
                match (
                    self.src.join(&flat).is_file(),
                    self.src.join(&nested).is_file(),
                ) {
                    (true, false) => (flat, self.dir.join(&name)),
                    (false, true) => (nested, self.dir.join(&name)),
                    (true, true) => {
                        return self.fail(format!(
                            "module {name}: both {} and {} exist",
                            flat.display(),
                            nested.display()
                        ))
                    }
                    (false, false) => {
                        return self.fail(format!(
                            "module {name}: neither {} nor {} exists",
                            flat.display(),
                            nested.display()
                        ))
                    }
                }
            }
        };
        let id = self.new_module(&name, file, test);
        if let Err(e) = load_file(self.krate, self.src, id, &child_dir) {
            self.fail(e);
        }
    }

    fn new_module(&mut self, name: &str, file: PathBuf, test: bool) -> ModId {
        let id = self.krate.modules.len();
        self.krate
            .modules
            .push(Module::new(Some(self.module), file, test));
        self.krate.modules[self.module]
            .children
            .insert(name.to_string(), id);
        id
    }

    /// Paths in a macro's tokens (`format!("{}", crate::x::f())`, `$crate::cli::E`),
    /// which syn leaves unparsed: every `a::b` chain of identifiers.
    fn macro_paths(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < trees.len() {
            if let TokenTree::Group(g) = &trees[i] {
                self.macro_paths(g.stream());
                i += 1;
                continue;
            }
            let dollar = matches!(&trees[i], TokenTree::Punct(p) if p.as_char() == '$');
            let start = if dollar { i + 1 } else { i };
            let Some(TokenTree::Ident(first)) = trees.get(start) else {
                i += 1;
                continue;
            };
            let mut path = vec![if dollar && first == "crate" {
                "$crate".to_string()
            } else {
                first.to_string()
            }];
            let mut j = start + 1;
            while let (
                Some(TokenTree::Punct(a)),
                Some(TokenTree::Punct(b)),
                Some(TokenTree::Ident(next)),
            ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
            {
                if a.as_char() != ':' || b.as_char() != ':' {
                    break;
                }
                path.push(next.to_string());
                j += 3;
            }
            if path.len() > 1 {
                let text = path.join("::");
                self.add_ref(path, text);
            }
            i = j.max(i + 1);
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let outer = self.test;
        self.test |= is_test_only(item_attrs(item));
        if self.blocks == 0 {
            if let Some(name) = defined_name(item) {
                self.krate.modules[self.module].items.insert(name);
            }
        }
        visit::visit_item(self, item);
        self.test = outer;
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let outer = self.test;
        if let syn::ImplItem::Fn(f) = item {
            self.test |= is_test_only(&f.attrs);
        }
        visit::visit_impl_item(self, item);
        self.test = outer;
    }

    fn visit_block(&mut self, block: &'ast syn::Block) {
        self.blocks += 1;
        visit::visit_block(self, block);
        self.blocks -= 1;
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        let test = self.test || is_test_only(&m.attrs);
        let Some((_, items)) = &m.content else {
            return self.file_module(m, test);
        };
        let name = m.ident.to_string();
        let file = self.krate.modules[self.module].file.clone();
        let id = self.new_module(&name, file, test);
        let (module, dir, inline, blocks) =
            (self.module, self.dir.clone(), self.inline, self.blocks);
        self.module = id;
        self.dir = dir.join(&name);
        self.inline = true;
        self.blocks = 0;
        for item in items {
            self.visit_item(item);
        }
        (self.module, self.dir, self.inline, self.blocks) = (module, dir, inline, blocks);
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if u.leading_colon.is_some() {
            return; // `use ::x`: always another crate
        }
        let mut uses = Vec::new();
        flatten(&u.tree, &mut Vec::new(), &mut uses);
        for (path, binding) in uses {
            let text = format!(
                "use {}{}",
                path.join("::"),
                if binding.is_none() { "::*" } else { "" }
            );
            if self.blocks == 0 {
                self.krate.modules[self.module].imports.push(Import {
                    binding,
                    path: path.clone(),
                    test_only: self.test,
                });
            }
            self.add_ref(path, text);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        let rooted = matches!(
            segments.first().map(String::as_str),
            Some("crate" | "super" | "self")
        );
        if p.leading_colon.is_none() && (segments.len() > 1 || rooted) {
            let text = segments.join("::");
            self.add_ref(segments, text);
        }
        visit::visit_path(self, p);
    }

    /// `pub(super)` and `pub(in crate::x)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.macro_paths(m.tokens.clone());
    }
}
