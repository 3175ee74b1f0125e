//! The README's "Where things live" map cannot go stale: every path it names exists, every
//! module and sub-folder of `src/` is in it, the modules import each other one way only (no
//! cycles), and the README links only to files in this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).expect("README.md")
}

/// The paths the map names, in order.
fn mapped_paths() -> Vec<String> {
    let text = readme();
    let section = text
        .split("\n## Where things live")
        .nth(1)
        .expect("the README has a \"## Where things live\" section");
    let block = section
        .split("```")
        .nth(1)
        .expect("the section holds the map in a code block");
    block
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_path_in_the_map_exists() {
    let paths = mapped_paths();
    assert!(paths.len() > 20, "the map looks truncated: {paths:?}");
    for p in &paths {
        let on_disk = root().join(p);
        if p.ends_with('/') {
            assert!(
                on_disk.is_dir(),
                "the README maps {p}, which is not a folder"
            );
        } else {
            assert!(
                on_disk.is_file(),
                "the README maps {p}, which is not a file"
            );
        }
    }
}

#[test]
fn every_module_and_sub_folder_of_src_is_in_the_map() {
    let mapped: BTreeSet<String> = mapped_paths().into_iter().collect();
    let src = root().join("src");
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let dir = format!("src/{name}/");
            if !mapped.contains(&dir) {
                missing.push(dir);
            }
            for sub in std::fs::read_dir(&path).unwrap() {
                let sub = sub.unwrap().path();
                if sub.is_dir() {
                    let d = format!("src/{name}/{}/", sub.file_name().unwrap().to_string_lossy());
                    if !mapped.contains(&d) {
                        missing.push(d);
                    }
                }
            }
        } else if name.ends_with(".rs") && name != "lib.rs" {
            let file = format!("src/{name}");
            if !mapped.contains(&file) {
                missing.push(file);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "add these to the README's \"Where things live\": {missing:?}"
    );
}

/// Text without comments and without `#[cfg(test)] mod … { … }` blocks.
fn architecture_text(text: &str) -> String {
    let no_comments: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let marker =
        regex::Regex::new(r"#\[cfg\(test\)\]\s*(pub(\(crate\))?\s+)?mod\s+\w+\s*\{").unwrap();
    let mut out = String::new();
    let mut rest = no_comments.as_str();
    while let Some(m) = marker.find(rest) {
        out.push_str(&rest[..m.start()]);
        let mut depth = 1;
        let body = &rest[m.end()..];
        let mut end = body.len();
        for (i, c) in body.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &body[end..];
    }
    out.push_str(rest);
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn top_level_modules_import_each_other_one_way_only() {
    let src = root().join("src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() || (name != "lib" && name != "main") {
            modules.insert(name);
        }
    }
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let reference = regex::Regex::new(r"crate::(\w+)").unwrap();
    let group = regex::Regex::new(r"use\s+crate::\{([^;]*)\};").unwrap();
    let name = regex::Regex::new(r"(?:^|[,{\s])(\w+)(?:::|\s*[,}]|\s*$)").unwrap();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let mut parts = rel.components();
        let first = parts
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let from = if parts.next().is_none() {
            first.trim_end_matches(".rs").to_owned()
        } else {
            first
        };
        if from == "lib" || from == "main" {
            continue;
        }
        let text = architecture_text(&std::fs::read_to_string(&file).unwrap());
        let mut to: Vec<String> = reference
            .captures_iter(&text)
            .map(|c| c[1].to_owned())
            .collect();
        for g in group.captures_iter(&text) {
            to.extend(name.captures_iter(&g[1]).map(|c| c[1].to_owned()));
        }
        for t in to {
            if modules.contains(&t) && t != from {
                edges.entry(from.clone()).or_default().insert(t);
            }
        }
    }
    // A cycle exists iff some module reaches itself.
    for start in &modules {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(&at).into_iter().flatten() {
                if next == start {
                    panic!("import cycle: {} -> {start}", path.join(" -> "));
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    // The rule the README states: components never import the wiring or the whole config.
    for component in [
        "ingress",
        "api",
        "stages",
        "projector",
        "phones",
        "kafka",
        "store",
    ] {
        for wiring in ["app", "cli", "config"] {
            assert!(
                !edges.get(component).is_some_and(|t| t.contains(wiring)),
                "{component} imports {wiring}: pass it its own settings instead"
            );
        }
    }
}

#[test]
fn the_readme_links_only_to_files_in_this_repository() {
    let text = readme();
    let link = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    for c in link.captures_iter(&text) {
        let target = c[1].split('#').next().unwrap_or_default();
        assert!(
            !target.contains("://") && !target.starts_with("..") && !target.starts_with('/'),
            "README links outside the repository: {}",
            &c[1]
        );
        if !target.is_empty() {
            assert!(
                root().join(target).exists(),
                "README links to {target}, which does not exist"
            );
        }
    }
}
