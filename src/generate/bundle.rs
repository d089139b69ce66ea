//! Writing transaction Bundles entry by entry: nothing but the current
//! patient is held in memory.
//!
//! Every entry is `PUT Type/id` with the resource's stable id, and
//! `fullUrl` is `urn:uuid:<id>` (ids are UUIDs); references between
//! resources are plain `Type/id`, so they mean the same inside and outside
//! the Bundle and need no rewriting.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde_json::Value;

pub struct BundleFile {
    out: BufWriter<File>,
    entries: usize,
}

impl BundleFile {
    pub fn create(path: &Path) -> io::Result<BundleFile> {
        let mut out = BufWriter::with_capacity(1 << 20, File::create(path)?);
        out.write_all(br#"{"resourceType":"Bundle","type":"transaction","entry":["#)?;
        Ok(BundleFile { out, entries: 0 })
    }

    /// Appends `PUT Type/id` for the resource, counting it by type.
    pub fn put(&mut self, resource: &Value, counts: &mut BTreeMap<String, u64>) -> io::Result<()> {
        let rtype = resource["resourceType"].as_str().expect("a resourceType");
        let id = resource["id"].as_str().expect("an id");
        if self.entries > 0 {
            self.out.write_all(b",")?;
        }
        write!(self.out, r#"{{"fullUrl":"urn:uuid:{id}","resource":"#)?;
        serde_json::to_writer(&mut self.out, resource)?;
        write!(
            self.out,
            r#","request":{{"method":"PUT","url":"{rtype}/{id}"}}}}"#
        )?;
        self.entries += 1;
        match counts.get_mut(rtype) {
            Some(n) => *n += 1,
            None => {
                counts.insert(rtype.to_string(), 1);
            }
        }
        Ok(())
    }

    /// Closes the Bundle; returns its number of entries.
    pub fn finish(mut self) -> io::Result<usize> {
        self.out.write_all(b"]}\n")?;
        self.out.flush()?;
        Ok(self.entries)
    }
}
