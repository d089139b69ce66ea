//! ICD-10-CM: the official CDC/NCHS tabular XML (`icd10cm-tabular-*.xml`)
//! turned into the derived form Charaka ships and loads (a tab-separated,
//! gzip-compressed text, see `terminology/README.md`), and that form turned
//! into a [`CodeSystem`].
//!
//! The tabular XML nests `chapter` → `section` (block) → `diag` (category,
//! subcategories, codes). Codes that need a 7th character are not listed in
//! the XML: a `sevenChrDef` on a code or an ancestor defines the characters,
//! and every leaf below it gets one child per character (padded with `X`
//! placeholders to six characters). The one exception the XML states in
//! prose — category S06 takes only `A` after a 6th character 7 or 8 — is
//! applied here ([`seventh_applies`]). A block whose id is the code of its
//! only category (`B20`, `Z66`, ...) is the same concept as that category.

use std::io::{Read, Write};

use quick_xml::events::Event;
use quick_xml::reader::Reader;

use super::codesystem::{CodeSystem, Concept, Designation, PropertyValue};

/// The canonical URL of ICD-10-CM in FHIR.
pub const SYSTEM: &str = "http://hl7.org/fhir/sid/icd-10-cm";

/// The first line of the derived form.
const MAGIC: &str = "#charaka-icd10cm 1";

/// What level of the classification an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chapter,
    Block,
    Category,
    /// A subcategory or code below a category.
    Code,
    /// A code made by adding a 7th character.
    Extension,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Chapter => "chapter",
            Kind::Block => "block",
            Kind::Category => "category",
            Kind::Code => "code",
            Kind::Extension => "extension",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "chapter" => Kind::Chapter,
            "block" => Kind::Block,
            "category" => Kind::Category,
            "code" => Kind::Code,
            "extension" => Kind::Extension,
            _ => return None,
        })
    }
}

/// The instructional notes of the tabular list, by the property code
/// Charaka gives them.
const NOTE_ELEMENTS: &[(&str, &str)] = &[
    ("inclusionTerm", "inclusionTerm"),
    ("includes", "includes"),
    ("excludes1", "excludes1"),
    ("excludes2", "excludes2"),
    ("codeFirst", "codeFirst"),
    ("codeAlso", "codeAlso"),
    ("useAdditionalCode", "useAdditionalCode"),
    ("notes", "note"),
    ("sevenChrNote", "sevenChrNote"),
];

/// One chapter, block or code of a release.
#[derive(Debug, Clone)]
pub struct Item {
    pub kind: Kind,
    pub code: String,
    pub parent: Option<usize>,
    pub display: String,
    /// (property code, text), e.g. ("excludes1", "...").
    pub notes: Vec<(String, String)>,
    /// 7th characters defined here: (character, meaning).
    pub seventh: Vec<(char, String)>,
    pub has_children: bool,
}

/// A parsed release.
#[derive(Debug)]
pub struct Release {
    /// The `<version>` of the file (the fiscal year).
    pub version: String,
    pub items: Vec<Item>,
}

impl Release {
    /// Codes that may be reported (leaves below the block level).
    pub fn billable(&self) -> usize {
        self.items
            .iter()
            .filter(|i| !matches!(i.kind, Kind::Chapter | Kind::Block) && !i.has_children)
            .count()
    }
}

fn xml_error(reader: &Reader<&[u8]>, e: impl std::fmt::Display) -> String {
    format!("at byte {}: {e}", reader.buffer_position())
}

/// Parses the tabular XML.
pub fn parse_tabular(xml: &[u8]) -> Result<Release, String> {
    let mut reader = Reader::from_reader(xml);
    // Element names from the root down.
    let mut path: Vec<String> = Vec::new();
    // Items open at each level (chapter, section, diag).
    let mut open: Vec<usize> = Vec::new();
    let mut items: Vec<Item> = Vec::new();
    let mut version = String::new();
    let mut text = String::new();
    let mut seventh_char: Option<char> = None;
    // Subtrees that carry no items.
    let mut skip_depth: Option<usize> = None;
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&reader, e))?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                path.push(name.clone());
                text.clear();
                if skip_depth.is_some() {
                    continue;
                }
                match name.as_str() {
                    "introduction" | "sectionIndex" | "visualImpairment" => {
                        skip_depth = Some(path.len());
                    }
                    "chapter" | "section" | "diag" => {
                        let kind = match name.as_str() {
                            "chapter" => Kind::Chapter,
                            "section" => Kind::Block,
                            _ => Kind::Code,
                        };
                        let mut code = String::new();
                        if kind == Kind::Block {
                            for attr in e.attributes().flatten() {
                                if attr.key.as_ref() == b"id" {
                                    code = String::from_utf8_lossy(&attr.value).trim().to_string();
                                }
                            }
                        }
                        let parent = open.last().copied();
                        if let Some(p) = parent {
                            items[p].has_children = true;
                        }
                        items.push(Item {
                            kind,
                            code,
                            parent,
                            display: String::new(),
                            notes: Vec::new(),
                            seventh: Vec::new(),
                            has_children: false,
                        });
                        open.push(items.len() - 1);
                    }
                    "extension" => {
                        seventh_char = e
                            .attributes()
                            .flatten()
                            .find(|a| a.key.as_ref() == b"char")
                            .and_then(|a| String::from_utf8_lossy(&a.value).chars().next());
                    }
                    _ => {}
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| xml_error(&reader, e))?;
                text.push_str(&s);
            }
            Event::CData(t) => text.push_str(&String::from_utf8_lossy(&t)),
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(|e| xml_error(&reader, e))?;
                let c = match name.as_ref() {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => r.resolve_char_ref().ok().flatten(),
                };
                text.extend(c);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                if let Some(d) = skip_depth {
                    if path.len() + 1 == d {
                        skip_depth = None;
                    }
                    continue;
                }
                let value = collapse(&text);
                let parent_element = path.last().map(String::as_str).unwrap_or("");
                match name.as_str() {
                    "version" if path.len() == 1 => version = value,
                    "chapter" | "section" | "diag" => {
                        open.pop();
                    }
                    "name" => {
                        if let Some(&i) = open.last() {
                            items[i].code = value;
                        }
                    }
                    "desc" => {
                        if let Some(&i) = open.last() {
                            items[i].display = value;
                        }
                    }
                    "extension" => {
                        if let (Some(&i), Some(c)) = (open.last(), seventh_char) {
                            items[i].seventh.push((c, value));
                        }
                    }
                    "note" if parent_element == "sevenChrDef" => {
                        // A note continues the meaning of the last character.
                        if let Some(&i) = open.last() {
                            if let Some(last) = items[i].seventh.last_mut() {
                                last.1.push('/');
                                last.1.push_str(&value);
                            }
                        }
                    }
                    "note" => {
                        let kind = NOTE_ELEMENTS
                            .iter()
                            .find(|(element, _)| *element == parent_element)
                            .map(|(_, code)| *code);
                        if let (Some(&i), Some(kind)) = (open.last(), kind) {
                            if !value.is_empty() {
                                items[i].notes.push((kind.to_string(), value));
                            }
                        }
                    }
                    _ => {}
                }
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if items.is_empty() {
        return Err("no chapters found: is this an ICD-10-CM tabular XML file?".into());
    }
    for item in &mut items {
        if item.kind == Kind::Code && item.code.len() == 3 {
            item.kind = Kind::Category;
        }
        if item.code.is_empty() {
            return Err(format!("an item without a code ({})", item.display));
        }
    }
    let items = merge_single_category_blocks(items);
    let items = add_seventh_characters(items);
    Ok(Release { version, items })
}

/// Whitespace runs become one space; ends are trimmed.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A block whose id equals the code of its one category is that category.
fn merge_single_category_blocks(items: Vec<Item>) -> Vec<Item> {
    let merged: Vec<bool> = items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            item.kind == Kind::Block
                && items
                    .iter()
                    .skip(i + 1)
                    .take_while(|c| c.parent.is_some_and(|p| p >= i))
                    .any(|c| c.parent == Some(i) && c.code == item.code)
        })
        .collect();
    // New positions of kept items.
    let mut position = vec![usize::MAX; items.len()];
    let mut next = 0;
    for (i, m) in merged.iter().enumerate() {
        if !m {
            position[i] = next;
            next += 1;
        }
    }
    let parents: Vec<Option<usize>> = items.iter().map(|i| i.parent).collect();
    items
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !merged[*i])
        .map(|(_, mut item)| {
            let mut parent = item.parent;
            while let Some(p) = parent.filter(|p| merged[*p]) {
                parent = parents[p];
            }
            item.parent = parent.map(|p| position[p]);
            item
        })
        .collect()
}

/// Whether the 7th character `c` applies to the 6-character code `stem`
/// (dotted form, e.g. `S06.1X7`).
pub fn seventh_applies(stem: &str, c: char) -> bool {
    // "7th characters D and S do not apply to codes in category S06 with
    // 6th character 7 - death due to brain injury prior to regaining
    // consciousness, or 8 - death due to other cause prior to regaining
    // consciousness."
    !(stem.starts_with("S06") && stem.ends_with(['7', '8']) && c != 'A')
}

/// Adds the 7th-character codes below every leaf that needs one.
fn add_seventh_characters(items: Vec<Item>) -> Vec<Item> {
    let n = items.len();
    // The nearest definition of 7th characters at or above each item.
    let mut definition: Vec<Option<usize>> = vec![None; n];
    for i in 0..n {
        definition[i] = if items[i].seventh.is_empty() {
            items[i].parent.and_then(|p| definition[p])
        } else {
            Some(i)
        };
    }
    let mut out: Vec<Item> = Vec::with_capacity(n * 2);
    // Where each item of `items` went in `out` (parents come first).
    let mut moved: Vec<usize> = Vec::with_capacity(n);
    for (i, item) in items.iter().enumerate() {
        let mut copy = item.clone();
        copy.parent = item.parent.map(|p| moved[p]);
        moved.push(out.len());
        out.push(copy);
        let Some(def) = definition[i] else { continue };
        if item.has_children || matches!(item.kind, Kind::Chapter | Kind::Block) {
            continue;
        }
        let here = out.len() - 1;
        let mut stem = item.code.clone();
        if stem.len() == 3 {
            stem.push('.');
        }
        while stem.len() < 7 {
            stem.push('X');
        }
        for (c, meaning) in &items[def].seventh {
            if !seventh_applies(&stem, *c) {
                continue;
            }
            out[here].has_children = true;
            out.push(Item {
                kind: Kind::Extension,
                code: format!("{stem}{c}"),
                parent: Some(here),
                display: format!("{}, {meaning}", item.display),
                notes: Vec::new(),
                seventh: Vec::new(),
                has_children: false,
            });
        }
    }
    out
}

/// Escapes tabs, line breaks and backslashes of a field.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some(other) => out.push(other),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Where a derived file came from.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub version: String,
    pub source_file: String,
    pub source_sha256: String,
}

/// The derived form: a header, then one `C` line per item (`C code parent
/// kind display`), each followed by its `N` note lines (`N property text`)
/// and `S` 7th-character lines (`S char meaning`). Gzip-compressed.
pub fn write_derived(release: &Release, origin: &Origin) -> Vec<u8> {
    let mut text = String::with_capacity(release.items.len() * 120);
    text.push_str(MAGIC);
    text.push('\n');
    text.push_str(&format!("version\t{}\n", escape(&origin.version)));
    text.push_str(&format!("source\t{}\n", escape(&origin.source_file)));
    text.push_str(&format!("sha256\t{}\n", escape(&origin.source_sha256)));
    for item in &release.items {
        let parent = item
            .parent
            .map(|p| release.items[p].code.as_str())
            .unwrap_or("");
        text.push_str(&format!(
            "C\t{}\t{}\t{}\t{}\n",
            escape(&item.code),
            escape(parent),
            item.kind.as_str(),
            escape(&item.display)
        ));
        for (kind, note) in &item.notes {
            text.push_str(&format!("N\t{kind}\t{}\n", escape(note)));
        }
        for (c, meaning) in &item.seventh {
            text.push_str(&format!("S\t{c}\t{}\n", escape(meaning)));
        }
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(text.as_bytes()).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// Reads the derived form into a CodeSystem with the ICD-10-CM properties.
pub fn read_derived(gz: &[u8]) -> Result<(CodeSystem, Origin), String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| format!("not a gzip-compressed ICD-10-CM file: {e}"))?;
    let mut lines = text.lines();
    if lines.next() != Some(MAGIC) {
        return Err("not a Charaka ICD-10-CM file (bad first line)".into());
    }
    let mut origin = Origin::default();
    let mut concepts: Vec<Concept> = Vec::with_capacity(100_000);
    let mut kinds: Vec<Kind> = Vec::with_capacity(100_000);
    let mut by_code: std::collections::HashMap<String, u32> = Default::default();
    for (n, line) in lines.enumerate() {
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = || format!("line {}: malformed `{}`", n + 2, fields[0]);
        match fields[0] {
            "version" => origin.version = unescape(fields.get(1).ok_or_else(bad)?),
            "source" => origin.source_file = unescape(fields.get(1).ok_or_else(bad)?),
            "sha256" => origin.source_sha256 = unescape(fields.get(1).ok_or_else(bad)?),
            "C" => {
                let [_, code, parent, kind, display] = fields[..] else {
                    return Err(bad());
                };
                let kind = Kind::parse(kind).ok_or_else(bad)?;
                let parent = if parent.is_empty() {
                    None
                } else {
                    Some(*by_code.get(parent).ok_or_else(|| {
                        format!("line {}: parent {parent} is not defined before", n + 2)
                    })?)
                };
                let code = unescape(code);
                let id = concepts.len() as u32;
                by_code.insert(code.clone(), id);
                let mut concept = Concept::new(code, unescape(display));
                concept.parent = parent;
                concept.not_selectable = matches!(kind, Kind::Chapter | Kind::Block);
                concepts.push(concept);
                kinds.push(kind);
            }
            "N" => {
                let [_, property, note] = fields[..] else {
                    return Err(bad());
                };
                let concept = concepts.last_mut().ok_or_else(bad)?;
                let note = unescape(note);
                if property == "inclusionTerm" {
                    concept.designations.push(Designation {
                        language: Some("en".into()),
                        use_code: Some("inclusionTerm".into()),
                        value: note.clone().into(),
                    });
                }
                concept
                    .properties
                    .push((property.into(), PropertyValue::String(note.into())));
            }
            "S" => {
                let [_, c, meaning] = fields[..] else {
                    return Err(bad());
                };
                let concept = concepts.last_mut().ok_or_else(bad)?;
                concept.properties.push((
                    "sevenChrDef".into(),
                    PropertyValue::String(format!("{c}: {}", unescape(meaning)).into()),
                ));
            }
            "" => {}
            other => return Err(format!("line {}: unknown record `{other}`", n + 2)),
        }
    }
    drop(by_code);
    // Chapter and block of every item, from its ancestors.
    let mut chapter: Vec<Option<u32>> = vec![None; concepts.len()];
    let mut block: Vec<Option<u32>> = vec![None; concepts.len()];
    for i in 0..concepts.len() {
        let parent = concepts[i].parent;
        chapter[i] = match kinds[i] {
            Kind::Chapter => Some(i as u32),
            _ => parent.and_then(|p| chapter[p as usize]),
        };
        block[i] = match kinds[i] {
            Kind::Block => Some(i as u32),
            Kind::Category if parent.is_some_and(|p| kinds[p as usize] == Kind::Chapter) => {
                // A block of one category, merged with it.
                Some(i as u32)
            }
            _ => parent.and_then(|p| block[p as usize]),
        };
    }
    let chapter_codes: Vec<Option<Box<str>>> = chapter
        .iter()
        .map(|c| c.map(|c| concepts[c as usize].code.clone()))
        .collect();
    let block_codes: Vec<Option<Box<str>>> = block
        .iter()
        .map(|c| c.map(|c| concepts[c as usize].code.clone()))
        .collect();
    for (i, concept) in concepts.iter_mut().enumerate() {
        if let Some(c) = chapter_codes[i].clone() {
            concept
                .properties
                .push(("chapter".into(), PropertyValue::Code(c)));
        }
        if let Some(b) = block_codes[i].clone() {
            if kinds[i] != Kind::Chapter {
                concept
                    .properties
                    .push(("block".into(), PropertyValue::Code(b)));
            }
        }
        concept
            .properties
            .push(("kind".into(), PropertyValue::Code(kinds[i].as_str().into())));
    }
    let mut cs = CodeSystem::new(SYSTEM, Some(origin.version.clone()), concepts);
    cs.name = Some("ICD10CM".into());
    cs.title = Some("International Classification of Diseases, Tenth Revision, Clinical Modification (ICD-10-CM)".into());
    cs.publisher = Some("National Center for Health Statistics (NCHS), CDC".into());
    cs.billable_property = true;
    Ok((cs, origin))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<ICD10CM.tabular>
  <version>2099</version>
  <introduction><introSection type="title"><title>T</title></introSection></introduction>
  <chapter>
    <name>4</name>
    <desc>Endocrine diseases (E00-E89)</desc>
    <sectionIndex><sectionRef first="E08" last="E13" id="E08-E13">Diabetes</sectionRef></sectionIndex>
    <section id="E08-E13">
      <desc>Diabetes mellitus (E08-E13)</desc>
      <diag>
        <name>E11</name>
        <desc>Type 2 diabetes mellitus</desc>
        <inclusionTerm><note>type II diabetes</note></inclusionTerm>
        <excludes1><note>diabetes mellitus due to underlying condition (E08.-)</note></excludes1>
        <diag>
          <name>E11.9</name>
          <desc>Type 2 diabetes mellitus without complications</desc>
        </diag>
      </diag>
    </section>
    <section id="E66">
      <desc>Overweight (E66)</desc>
      <diag><name>E66</name><desc>Overweight &lt;and&gt; obesity</desc></diag>
    </section>
  </chapter>
  <chapter>
    <name>19</name>
    <desc>Injury</desc>
    <section id="S00-S09">
      <desc>Injuries to the head (S00-S09)</desc>
      <diag>
        <name>S06</name>
        <desc>Intracranial injury</desc>
        <sevenChrDef>
          <extension char="A">initial encounter</extension>
          <extension char="D">subsequent encounter</extension>
        </sevenChrDef>
        <diag><name>S06.0</name><desc>Concussion</desc></diag>
        <diag><name>S06.1X7</name><desc>Edema with death</desc></diag>
      </diag>
    </section>
  </chapter>
</ICD10CM.tabular>"#;

    fn codes(release: &Release) -> Vec<&str> {
        release.items.iter().map(|i| i.code.as_str()).collect()
    }

    #[test]
    fn parses_hierarchy_notes_and_seventh_characters() {
        let release = parse_tabular(SAMPLE.as_bytes()).unwrap();
        assert_eq!(release.version, "2099");
        assert_eq!(
            codes(&release),
            [
                "4", "E08-E13", "E11", "E11.9", "E66", "19", "S00-S09", "S06", "S06.0", "S06.0XXA",
                "S06.0XXD", "S06.1X7", "S06.1X7A"
            ]
        );
        let e66 = &release.items[4];
        assert_eq!(e66.kind, Kind::Category);
        assert_eq!(e66.display, "Overweight <and> obesity");
        assert_eq!(release.items[e66.parent.unwrap()].code, "4", "merged block");
        let e11 = &release.items[2];
        assert_eq!(
            e11.notes,
            [
                ("inclusionTerm".to_string(), "type II diabetes".to_string()),
                (
                    "excludes1".to_string(),
                    "diabetes mellitus due to underlying condition (E08.-)".to_string()
                )
            ]
        );
        let ext = &release.items[9];
        assert_eq!(ext.kind, Kind::Extension);
        assert_eq!(ext.display, "Concussion, initial encounter");
        assert_eq!(release.items[ext.parent.unwrap()].code, "S06.0");
        // E11.9, E66, S06.0XXA, S06.0XXD, S06.1X7A
        assert_eq!(release.billable(), 5);
    }

    #[test]
    fn derived_form_round_trips_into_a_code_system() {
        let release = parse_tabular(SAMPLE.as_bytes()).unwrap();
        let origin = Origin {
            version: "2099".into(),
            source_file: "sample.xml".into(),
            source_sha256: "00".into(),
        };
        let (cs, back) = read_derived(&write_derived(&release, &origin)).unwrap();
        assert_eq!(back.source_file, "sample.xml");
        assert_eq!(cs.concepts.len(), release.items.len());
        let e119 = cs.concept("E11.9").unwrap();
        assert_eq!(
            cs.concepts[e119.parent.unwrap() as usize].code.as_ref(),
            "E11"
        );
        assert!(cs.is_billable(e119));
        let e11 = cs.concept("E11").unwrap();
        assert!(!cs.is_billable(e11));
        assert_eq!(e11.property("block"), Some("E08-E13"));
        assert_eq!(e11.property("chapter"), Some("4"));
        assert_eq!(e11.designations[0].value.as_ref(), "type II diabetes");
        assert!(cs.concept("E08-E13").unwrap().not_selectable);
        assert_eq!(
            cs.concept("E66").unwrap().property("block"),
            Some("E66"),
            "a merged block"
        );
        assert!(
            cs.concept("S06.1X7D").is_none(),
            "S06 death codes take A only"
        );
    }
}
