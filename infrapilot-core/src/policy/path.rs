//! Attribute paths: `host_config.privileged`, `mounts.0.source`, `mounts.*.source`.
//!
//! A path is split into segments once, at compile time. Resolution walks the resource JSON by
//! those segments without allocating. A numeric segment indexes an array (and names a key on an
//! object); `*` stands for every element of an array or every value of an object. A key that
//! itself contains a dot or is a literal `*` is written with a backslash: `labels.com\.docker\.compose\.project`.
//! JSON `null` counts as absent, so a path that ends on `null` resolves to nothing.

use std::collections::HashMap;

use serde_json::Value;

/// The most segments a path may have.
pub(crate) const MAX_SEGMENTS: usize = 32;
/// The longest path accepted, in bytes.
pub(crate) const MAX_PATH_LEN: usize = 512;

/// A parsed attribute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AttributePath {
    segments: Box<[Segment]>,
    has_wildcard: bool,
    /// How many leading segments come before the first wildcard.
    prefix_len: usize,
    /// The [`SlotTable`] slot of that prefix, once interned.
    slot: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Key { key: Box<str>, index: Option<usize> },
    Wildcard,
}

/// One step of a concrete path, as reported in evidence (`mounts.1.source`).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

impl AttributePath {
    /// Splits `raw` into segments, or says why it cannot.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("is empty".to_owned());
        }
        if raw.len() > MAX_PATH_LEN {
            return Err(format!("is longer than {MAX_PATH_LEN} bytes"));
        }
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut escaped_any = false;
        let mut chars = raw.chars();
        let mut finish = |current: &mut String, escaped_any: &mut bool| -> Result<(), String> {
            if current.is_empty() {
                return Err(
                    "has an empty segment (two dots in a row, or a leading or trailing dot)"
                        .to_owned(),
                );
            }
            let segment = if current == "*" && !*escaped_any {
                Segment::Wildcard
            } else {
                let index = if current.bytes().all(|b| b.is_ascii_digit()) {
                    current.parse::<usize>().ok()
                } else {
                    None
                };
                Segment::Key {
                    key: current.as_str().into(),
                    index,
                }
            };
            segments.push(segment);
            current.clear();
            *escaped_any = false;
            Ok(())
        };
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some(e @ ('.' | '*' | '\\')) => {
                        current.push(e);
                        escaped_any = true;
                    }
                    Some(other) => {
                        return Err(format!(
                            "has an unknown escape \\{other}; only \\., \\* and \\\\ are allowed"
                        ));
                    }
                    None => return Err("ends with a lone backslash".to_owned()),
                },
                '.' => finish(&mut current, &mut escaped_any)?,
                c if c.is_control() => {
                    return Err("contains a control character".to_owned());
                }
                c => current.push(c),
            }
        }
        finish(&mut current, &mut escaped_any)?;
        if segments.len() > MAX_SEGMENTS {
            return Err(format!("has more than {MAX_SEGMENTS} segments"));
        }
        let prefix_len = segments
            .iter()
            .position(|s| matches!(s, Segment::Wildcard))
            .unwrap_or(segments.len());
        let has_wildcard = prefix_len < segments.len();
        Ok(Self {
            segments: segments.into_boxed_slice(),
            has_wildcard,
            prefix_len,
            slot: None,
        })
    }

    /// Calls `f` on every value the path resolves to (skipping `null`) until `f` returns
    /// `true`; returns whether it did.
    #[inline]
    pub(crate) fn any<'v>(&self, root: &'v Value, f: &mut impl FnMut(&'v Value) -> bool) -> bool {
        if !self.has_wildcard {
            let mut v = root;
            for seg in &self.segments {
                match step(v, seg) {
                    Some(next) => v = next,
                    None => return false,
                }
            }
            return !v.is_null() && f(v);
        }
        any_rec(root, &self.segments, f)
    }

    /// Like [`AttributePath::any`], but also hands `f` the concrete path of each value.
    pub(crate) fn any_with_steps<'v>(
        &self,
        root: &'v Value,
        f: &mut impl FnMut(&[Step<'v>], &'v Value) -> bool,
    ) -> bool {
        let mut trail = Vec::with_capacity(self.segments.len());
        steps_rec(root, &self.segments, &mut trail, f)
    }
}

/// The wildcard-free path prefixes of a whole policy set, interned so that one evaluation
/// resolves each prefix (`host_config`, `host_config.memory`) at most once, however many
/// leaves share it.
#[derive(Debug, Default)]
pub(crate) struct SlotTable {
    defs: Vec<SlotDef>,
    index: HashMap<(u32, Segment), u32>,
}

#[derive(Debug)]
struct SlotDef {
    /// The parent slot, or [`ROOT`] for a first segment.
    parent: u32,
    segment: Segment,
}

const ROOT: u32 = u32::MAX;

impl SlotTable {
    /// Gives `path`'s wildcard-free prefix a slot, sharing slots with earlier paths.
    pub(crate) fn intern(&mut self, path: &mut AttributePath) {
        let mut parent = ROOT;
        for segment in &path.segments[..path.prefix_len] {
            let key = (parent, segment.clone());
            parent = match self.index.get(&key) {
                Some(id) => *id,
                None => {
                    let Ok(id) = u32::try_from(self.defs.len()) else {
                        return;
                    };
                    self.defs.push(SlotDef {
                        parent,
                        segment: segment.clone(),
                    });
                    self.index.insert(key, id);
                    id
                }
            };
        }
        path.slot = (parent != ROOT).then_some(parent);
    }
}

/// Resolves paths against one resource, remembering every prefix it has resolved.
pub(crate) struct Resolver<'t, 'v> {
    root: &'v Value,
    defs: &'t [SlotDef],
    memo: Vec<Option<Option<&'v Value>>>,
}

impl<'t, 'v> Resolver<'t, 'v> {
    /// A resolver for `root` over the slots of `table`.
    pub(crate) fn new(root: &'v Value, table: &'t SlotTable) -> Self {
        Self {
            root,
            defs: &table.defs,
            memo: vec![None; table.defs.len()],
        }
    }

    /// The resource being evaluated.
    pub(crate) fn root(&self) -> &'v Value {
        self.root
    }

    fn slot(&mut self, id: u32) -> Option<&'v Value> {
        let i = id as usize;
        if let Some(Some(known)) = self.memo.get(i) {
            return *known;
        }
        let def = self.defs.get(i)?;
        let parent = if def.parent == ROOT {
            Some(self.root)
        } else {
            self.slot(def.parent)
        };
        let resolved = parent.and_then(|v| step(v, &def.segment));
        if let Some(m) = self.memo.get_mut(i) {
            *m = Some(resolved);
        }
        resolved
    }

    /// Like [`AttributePath::any`], with the wildcard-free prefix resolved through the memo.
    #[inline]
    pub(crate) fn any(
        &mut self,
        path: &AttributePath,
        f: &mut impl FnMut(&'v Value) -> bool,
    ) -> bool {
        let Some(slot) = path.slot else {
            return path.any(self.root, f);
        };
        let Some(base) = self.slot(slot) else {
            return false;
        };
        let rest = path.segments.get(path.prefix_len..).unwrap_or_default();
        if rest.is_empty() {
            return !base.is_null() && f(base);
        }
        any_rec(base, rest, f)
    }
}

/// Renders a concrete path as dot-separated text, escaping dots and stars inside keys.
pub(crate) fn render_steps(steps: &[Step<'_>]) -> String {
    let mut out = String::new();
    for (i, s) in steps.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        match s {
            Step::Key(k) => {
                for c in k.chars() {
                    if matches!(c, '.' | '\\') || (c == '*' && k.len() == 1) {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Step::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

#[inline]
fn step<'v>(v: &'v Value, seg: &Segment) -> Option<&'v Value> {
    match (v, seg) {
        (Value::Object(map), Segment::Key { key, .. }) => map.get(&**key),
        (Value::Array(items), Segment::Key { index: Some(i), .. }) => items.get(*i),
        _ => None,
    }
}

fn any_rec<'v>(v: &'v Value, segs: &[Segment], f: &mut impl FnMut(&'v Value) -> bool) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return !v.is_null() && f(v);
    };
    match first {
        Segment::Wildcard => match v {
            Value::Array(items) => items.iter().any(|item| any_rec(item, rest, f)),
            Value::Object(map) => map.values().any(|item| any_rec(item, rest, f)),
            _ => false,
        },
        seg => step(v, seg).is_some_and(|next| any_rec(next, rest, f)),
    }
}

fn steps_rec<'v>(
    v: &'v Value,
    segs: &[Segment],
    trail: &mut Vec<Step<'v>>,
    f: &mut impl FnMut(&[Step<'v>], &'v Value) -> bool,
) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return !v.is_null() && f(trail, v);
    };
    let mut descend = |step: Step<'v>, next: &'v Value, trail: &mut Vec<Step<'v>>| {
        trail.push(step);
        let found = steps_rec(next, rest, trail, f);
        trail.pop();
        found
    };
    match (first, v) {
        (Segment::Wildcard, Value::Array(items)) => items
            .iter()
            .enumerate()
            .any(|(i, item)| descend(Step::Index(i), item, trail)),
        (Segment::Wildcard, Value::Object(map)) => map
            .iter()
            .any(|(k, item)| descend(Step::Key(k), item, trail)),
        (Segment::Key { key, .. }, Value::Object(map)) => match map.get_key_value(&**key) {
            Some((k, next)) => descend(Step::Key(k), next, trail),
            None => false,
        },
        (Segment::Key { index: Some(i), .. }, Value::Array(items)) => match items.get(*i) {
            Some(next) => descend(Step::Index(*i), next, trail),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(path: &str, doc: &Value, expected: &[(&str, Value)]) {
        let p = AttributePath::parse(path).unwrap();
        let mut got = Vec::new();
        p.any_with_steps(doc, &mut |steps, v| {
            got.push((render_steps(steps), v.clone()));
            false
        });
        let want: Vec<(String, Value)> = expected
            .iter()
            .map(|(p, v)| ((*p).to_owned(), v.clone()))
            .collect();
        assert_eq!(got, want, "path {path}");
        let mut fast = Vec::new();
        p.any(doc, &mut |v| {
            fast.push(v.clone());
            false
        });
        let want_values: Vec<Value> = want.into_iter().map(|(_, v)| v).collect();
        assert_eq!(fast, want_values, "fast path {path}");
    }

    #[test]
    fn resolution() {
        let doc = json!({
            "image": "nginx",
            "host_config": {"privileged": true, "memory": null},
            "mounts": [{"source": "/a"}, {"source": "/b"}, {"target": "/c"}],
            "labels": {"com.docker.compose.project": "web", "*": "star", "0": "zero"},
        });
        check("image", &doc, &[("image", json!("nginx"))]);
        check(
            "host_config.privileged",
            &doc,
            &[("host_config.privileged", json!(true))],
        );
        check("host_config.memory", &doc, &[]);
        check("host_config.nothing", &doc, &[]);
        check("image.tag", &doc, &[]);
        check("mounts.1.source", &doc, &[("mounts.1.source", json!("/b"))]);
        check("mounts.9.source", &doc, &[]);
        check(
            "mounts.*.source",
            &doc,
            &[
                ("mounts.0.source", json!("/a")),
                ("mounts.1.source", json!("/b")),
            ],
        );
        check(
            r"labels.com\.docker\.compose\.project",
            &doc,
            &[(r"labels.com\.docker\.compose\.project", json!("web"))],
        );
        check(r"labels.\*", &doc, &[(r"labels.\*", json!("star"))]);
        check("labels.0", &doc, &[("labels.0", json!("zero"))]);
    }

    #[test]
    fn bad_paths() {
        for (raw, reason) in [
            ("", "empty"),
            ("a..b", "empty segment"),
            (".a", "empty segment"),
            ("a.", "empty segment"),
            ("a\\", "lone backslash"),
            ("a\\n", "unknown escape"),
            ("a\nb", "control"),
        ] {
            let err = AttributePath::parse(raw).unwrap_err();
            assert!(err.contains(reason), "{raw:?}: {err}");
        }
        let long = vec!["a"; MAX_SEGMENTS + 1].join(".");
        assert!(
            AttributePath::parse(&long)
                .unwrap_err()
                .contains("segments")
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_rendering_round_trips(raw in "[a-z0-9.*\\\\]{0,12}") {
            if let Ok(p) = AttributePath::parse(&raw) {
                let steps: Vec<Step<'_>> = p.segments.iter().map(|s| match s {
                    Segment::Key { key, .. } => Step::Key(key),
                    Segment::Wildcard => Step::Key("*"),
                }).collect();
                let rendered = render_steps(&steps);
                let again = AttributePath::parse(&rendered).unwrap();
                // A wildcard renders as a literal star key, everything else round-trips.
                proptest::prop_assert_eq!(again.segments.len(), p.segments.len());
            }
        }
    }
}
