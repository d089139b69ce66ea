//! Cost of the body codec per stored body (`cargo bench --bench codec`): a
//! typical Patient of about 2 KB encoded and decoded plain (tag 0x00) and
//! sealed (LZ4 + AES-256-GCM, tag 0x01); and the compressors considered
//! before sealing (LZ4 from lz4_flex, deflate level 1 from flate2), with
//! their ratio on the same body.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

use charaka::store::codec::{Aad, Codec};
use charaka::store::keyring::KeyFile;

fn patient() -> Vec<u8> {
    let mut p = serde_json::json!({
        "resourceType": "Patient", "id": "f0a3c1e2-5b7d-4e8f-9a6b-2c4d6e8f0a1b",
        "meta": {"versionId": "3", "lastUpdated": "2026-11-23T10:15:00.123456Z"},
        "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">Anne Quetzalcoatlova, born 1980-02-02, MRN 0042-77-123</div>"},
        "identifier": [
            {"use": "usual", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
             "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "0042-77-123"},
            {"system": "urn:oid:2.16.840.1.113883.4.1", "value": "123-45-6789"}
        ],
        "active": true,
        "name": [
            {"use": "official", "family": "Quetzalcoatlova", "given": ["Anne", "Maria"], "prefix": ["Dr"]},
            {"use": "maiden", "family": "Smith", "given": ["Anne"]}
        ],
        "telecom": [
            {"system": "phone", "value": "(217) 555-1234", "use": "home"},
            {"system": "phone", "value": "(217) 555-9999", "use": "work", "rank": 1},
            {"system": "email", "value": "anne@example.org"}
        ],
        "gender": "female", "birthDate": "1980-02-02", "deceasedBoolean": false,
        "address": [
            {"use": "home", "type": "both", "line": ["12 Main St", "Apt 4"], "city": "Springfield",
             "district": "Sangamon", "state": "IL", "postalCode": "62701", "country": "USA",
             "period": {"start": "2010-03-01"}}
        ],
        "maritalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M", "display": "Married"}]},
        "contact": [
            {"relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
             "name": {"family": "O'Neil", "given": ["Tom"]},
             "telecom": [{"system": "phone", "value": "(217) 555-1235"}],
             "address": {"line": ["12 Main St"], "city": "Springfield", "state": "IL", "postalCode": "62701"},
             "gender": "male"}
        ],
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)"}]}, "preferred": true}],
        "generalPractitioner": [{"reference": "Practitioner/8f2e4a6c-1b3d-4f5a-8c7e-9d0b1a2c3e4f", "display": "Dr John Carter"}],
        "managingOrganization": {"reference": "Organization/2b4d6f8a-0c1e-4a3b-9d5f-7e9a1c3b5d7f", "display": "North Hospital"}
    });
    // Pad with a second narrative-like extension to about 2 KB.
    p["extension"] = serde_json::json!([{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
        "valueAddress": {"city": "Springfield", "state": "IL", "country": "USA"}},
        {"url": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
         "extension": [{"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3", "display": "White"}},
                        {"url": "text", "valueString": "White"}]}]);
    serde_json::to_vec(&p).unwrap()
}

fn per_op(n: u32, mut f: impl FnMut()) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        f();
    }
    started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let body = patient();
    let aad = Aad::Version {
        tenant: 1,
        rtype: "Patient",
        id: "f0a3c1e2-5b7d-4e8f-9a6b-2c4d6e8f0a1b",
        version: 3,
    };
    let n = 50_000;
    let plain = Codec::plain();
    let sealed = Codec::new(Some(Arc::new(KeyFile::generate().ring())), true);
    println!("Patient body: {} bytes", body.len());
    for (name, codec) in [("plain (0x00)", &plain), ("sealed (0x01)", &sealed)] {
        let stored = codec.encode(&body, &aad);
        let enc = per_op(n, || {
            std::hint::black_box(codec.encode(std::hint::black_box(&body), &aad));
        });
        let dec = per_op(n, || {
            std::hint::black_box(codec.decode(stored.clone(), &aad).unwrap());
        });
        println!(
            "{name:<14} stored {:>5} bytes  encode {enc:>6.2} µs  decode {dec:>6.2} µs (decode includes copying the stored bytes)",
            stored.len()
        );
    }

    let lz4 = lz4_flex::compress_prepend_size(&body);
    let lz4_c = per_op(n, || {
        std::hint::black_box(lz4_flex::compress_prepend_size(&body));
    });
    let lz4_d = per_op(n, || {
        std::hint::black_box(lz4_flex::decompress_size_prepended(&lz4).unwrap());
    });
    let deflate = |level| {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(&body).unwrap();
        e.finish().unwrap()
    };
    let defl = deflate(1);
    let defl_c = per_op(n / 5, || {
        std::hint::black_box(deflate(1));
    });
    let defl_d = per_op(n / 5, || {
        let mut out = Vec::with_capacity(body.len());
        flate2::read::DeflateDecoder::new(&defl[..])
            .read_to_end(&mut out)
            .unwrap();
        std::hint::black_box(out);
    });
    println!(
        "lz4_flex       {:>5} bytes ({:.0}%)  compress {lz4_c:>6.2} µs  decompress {lz4_d:>6.2} µs",
        lz4.len(),
        100.0 * lz4.len() as f64 / body.len() as f64
    );
    println!(
        "deflate -1     {:>5} bytes ({:.0}%)  compress {defl_c:>6.2} µs  decompress {defl_d:>6.2} µs",
        defl.len(),
        100.0 * defl.len() as f64 / body.len() as f64
    );
}
