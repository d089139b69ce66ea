//! `near` on Location (http://hl7.org/fhir/R4/location.html#positional):
//! `latitude|longitude|distance|units` by great-circle distance.

use serde_json::{json, Value};

use super::{create_id, entries, ids, included, match_ids, search, set};
use crate::harness::TestServer;

fn location(name: &str, lat: f64, lon: f64) -> Value {
    json!({
        "resourceType": "Location",
        "name": name,
        "position": {"latitude": lat, "longitude": lon},
    })
}

async fn near_finds_locations_within_the_distance(s: &TestServer) {
    // Around Pune (18.5204, 73.8567).
    let centre = create_id(s, location("Centre", 18.5204, 73.8567)).await;
    // About 5.6 km north.
    let north = create_id(s, location("North", 18.5704, 73.8567)).await;
    // Mumbai, about 120 km away.
    let mumbai = create_id(s, location("Mumbai", 19.0760, 72.8777)).await;
    // No position: never near anything.
    create_id(s, json!({"resourceType": "Location", "name": "Nowhere"})).await;

    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|1|km").await,
        set(&[&centre])
    );
    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|10|km").await,
        set(&[&centre, &north])
    );
    // Units: metres, miles; kilometres when absent.
    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|6000|m").await,
        set(&[&centre, &north])
    );
    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|5000|m").await,
        set(&[&centre])
    );
    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|80|[mi_i]").await,
        set(&[&centre, &north, &mumbai])
    );
    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|100").await,
        set(&[&centre, &north])
    );
    // Combined with another parameter.
    assert_eq!(
        ids(s, "Location?near=18.5204|73.8567|200|km&name=mum").await,
        set(&[&mumbai])
    );
    // A distance across the antimeridian.
    let fiji_west = create_id(s, location("West", -17.0, 179.9)).await;
    let fiji_east = create_id(s, location("East", -17.0, -179.9)).await;
    assert_eq!(
        ids(s, "Location?near=-17.0|179.95|20|km").await,
        set(&[&fiji_west, &fiji_east])
    );

    // Malformed values name the parameter.
    for query in [
        "Location?near=91|0|1|km",
        "Location?near=18.5|73.8|1|kg",
        "Location?near=18.5",
        "Location?near=north|73.8|1",
    ] {
        let r = s.get(query).await;
        let oo = r.outcome(400);
        assert!(oo.to_string().contains("near"), "{query}: {oo}");
    }
    // The CapabilityStatement lists it.
    let meta = s.get("metadata").await.text;
    assert!(meta.contains("Location-near"));
}

/// Without `_sort`, `near` results come nearest first, page after page;
/// `_sort` decides when given.
async fn near_results_come_nearest_first(s: &TestServer) {
    // Created far to near, so creation order is not distance order.
    let mumbai = create_id(s, location("Mumbai", 19.0760, 72.8777)).await;
    let north = create_id(s, location("North", 18.5704, 73.8567)).await;
    let centre = create_id(s, location("Centre", 18.5204, 73.8567)).await;
    let query = "Location?near=18.5204|73.8567|200|km";
    assert_eq!(
        match_ids(&search(s, query).await),
        vec![centre.clone(), north.clone(), mumbai.clone()]
    );
    // Seen from Mumbai: the other way round.
    assert_eq!(
        match_ids(&search(s, "Location?near=19.0760|72.8777|200|km").await),
        vec![mumbai.clone(), north.clone(), centre.clone()]
    );
    // Several points: each by its distance to the nearest of them.
    assert_eq!(
        match_ids(&search(s, "Location?near=19.07|72.87|200|km,18.5710|73.8567|200|km").await),
        vec![north.clone(), mumbai.clone(), centre.clone()]
    );
    // One at a time through the next links.
    let mut seen = Vec::new();
    let mut bundle = search(s, &format!("{query}&_count=1")).await;
    loop {
        seen.extend(match_ids(&bundle));
        let next = bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_string());
        match next {
            Some(url) => bundle = search(s, &url).await,
            None => break,
        }
    }
    assert_eq!(seen, vec![centre.clone(), north.clone(), mumbai.clone()]);
    // `_sort` wins.
    assert_eq!(
        match_ids(&search(s, &format!("{query}&_sort=name")).await),
        vec![centre, mumbai, north]
    );
    // R4 defines no sort key for `near`.
    s.get(&format!("{query}&_sort=near")).await.outcome(400);
}

/// The great-circle distance (km) by the haversine formula, on the sphere
/// of mean radius the server uses.
fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (p1, p2) = (a.0.to_radians(), b.0.to_radians());
    let (dp, dl) = ((b.0 - a.0).to_radians(), (b.1 - a.1).to_radians());
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().asin()
}

/// The `location-distance` extensions of each entry, by resource id.
fn distances(bundle: &Value) -> Vec<(String, Option<Value>)> {
    entries(bundle)
        .iter()
        .map(|e| {
            let id = e["resource"]["id"].as_str().unwrap().to_string();
            let extension = e["search"].get("extension").map(|x| {
                let x = x.as_array().expect("an array");
                assert_eq!(x.len(), 1, "{e}");
                assert_eq!(
                    x[0]["url"],
                    "http://hl7.org/fhir/StructureDefinition/location-distance"
                );
                x[0]["valueDistance"].clone()
            });
            (id, extension)
        })
        .collect()
}

/// Asserts each match's distance: `expected` (in `code` units) within
/// `tolerance`, by id.
fn assert_distances(bundle: &Value, expected: &[(&String, f64)], code: &str, tolerance: f64) {
    let got = distances(bundle);
    assert_eq!(got.len(), expected.len(), "{bundle}");
    for (id, want) in expected {
        let (_, d) = got
            .iter()
            .find(|(i, _)| i == *id)
            .unwrap_or_else(|| panic!("{id} matched: {bundle}"));
        let d = d.as_ref().unwrap_or_else(|| panic!("{id} has a distance"));
        assert_eq!(d["code"], code, "{d}");
        assert_eq!(d["unit"], code, "{d}");
        assert_eq!(d["system"], "http://unitsofmeasure.org", "{d}");
        let value = d["value"].as_f64().unwrap();
        assert!(
            (value - want).abs() <= tolerance,
            "{id}: {value} {code}, expected {want}"
        );
    }
}

/// Each `near` match carries its distance from the searched point
/// (`Bundle.entry.search.extension`, location-distance) in the unit the
/// search gave; included entries and other searches carry none.
async fn near_matches_carry_their_distance(s: &TestServer) {
    let (c, n, m) = ((18.5204, 73.8567), (18.5704, 73.8567), (19.0760, 72.8777));
    let centre = create_id(s, location("Centre", c.0, c.1)).await;
    let campus = create_id(s, location("Campus", 28.6139, 77.2090)).await;
    let mut north = location("North", n.0, n.1);
    north["partOf"] = json!({"reference": format!("Location/{campus}")});
    let north = create_id(s, north).await;
    let mumbai = create_id(s, location("Mumbai", m.0, m.1)).await;
    let (to_north, to_mumbai) = (haversine_km(c, n), haversine_km(c, m));
    // About 5.56 and 120 km: the fixture is what it claims.
    assert!((to_north - 5.56).abs() < 0.01 && (to_mumbai - 120.0).abs() < 10.0);

    // Kilometres, three decimals.
    let bundle = search(s, "Location?near=18.5204|73.8567|200|km").await;
    assert_distances(
        &bundle,
        &[(&centre, 0.0), (&north, to_north), (&mumbai, to_mumbai)],
        "km",
        0.0006,
    );
    let exact = distances(&bundle);
    assert_eq!(exact[0].1.as_ref().unwrap()["value"].as_f64(), Some(0.0));
    // Kilometres when the search gives no distance (10 km) or no unit.
    let bundle = search(s, "Location?near=18.5204|73.8567").await;
    assert_distances(&bundle, &[(&centre, 0.0), (&north, to_north)], "km", 0.0006);
    let bundle = search(s, "Location?near=18.5204|73.8567|200").await;
    assert_distances(
        &bundle,
        &[(&centre, 0.0), (&north, to_north), (&mumbai, to_mumbai)],
        "km",
        0.0006,
    );
    // Metres and international miles.
    let bundle = search(s, "Location?near=18.5204|73.8567|6000|m").await;
    assert_distances(
        &bundle,
        &[(&centre, 0.0), (&north, to_north * 1000.0)],
        "m",
        0.01,
    );
    let bundle = search(s, "Location?near=18.5204|73.8567|200|[mi_i]").await;
    assert_distances(
        &bundle,
        &[
            (&centre, 0.0),
            (&north, to_north / 1.609344),
            (&mumbai, to_mumbai / 1.609344),
        ],
        "[mi_i]",
        0.0006,
    );
    // Several points: from the closest, in its unit.
    let query = "Location?near=19.0760|72.8777|1|km,18.5204|73.8567|10|m";
    let bundle = search(s, &format!("{query}&name=mumbai")).await;
    assert_distances(&bundle, &[(&mumbai, 0.0)], "km", 0.0006);
    let bundle = search(s, &format!("{query}&name=centre")).await;
    assert_distances(&bundle, &[(&centre, 0.0)], "m", 0.0006);
    let bundle = search(
        s,
        "Location?near=19.0760|72.8777|10|km,18.5204|73.8567|7|km&name=north",
    )
    .await;
    assert_distances(&bundle, &[(&north, to_north)], "km", 0.0006);
    let bundle = search(
        s,
        "Location?near=19.0760|72.8777|10|km,18.5204|73.8567|7000|m&name=north",
    )
    .await;
    assert_distances(&bundle, &[(&north, to_north * 1000.0)], "m", 0.01);
    // With `_sort` and `_elements` too (the distance comes from the stored
    // position, not the shown one).
    let bundle = search(
        s,
        "Location?near=18.5204|73.8567|200|km&_sort=name&_elements=name",
    )
    .await;
    assert_eq!(
        match_ids(&bundle),
        vec![centre.clone(), mumbai.clone(), north.clone()]
    );
    assert_distances(
        &bundle,
        &[(&centre, 0.0), (&north, to_north), (&mumbai, to_mumbai)],
        "km",
        0.0006,
    );
    // Included entries (a Location too) carry none.
    let bundle = search(
        s,
        "Location?near=18.5704|73.8567|1|km&_include=Location:partof",
    )
    .await;
    assert_eq!(match_ids(&bundle), vec![north.clone()]);
    assert_eq!(included(&bundle), vec![format!("Location/{campus}")]);
    let got = distances(&bundle);
    assert!(
        got.iter().any(|(id, d)| *id == north && d.is_some()),
        "{bundle}"
    );
    assert!(
        got.iter().any(|(id, d)| *id == campus && d.is_none()),
        "{bundle}"
    );
    // Other searches carry none.
    for query in ["Location?name=North", "Location", "Location?_id={north}"] {
        let bundle = search(s, &query.replace("{north}", &north)).await;
        assert!(!entries(&bundle).is_empty());
        assert!(
            distances(&bundle).iter().all(|(_, d)| d.is_none()),
            "{query}: {bundle}"
        );
    }
    // XML renders it as an extension of `search`.
    let xml = s
        .get("Location?near=18.5704|73.8567|1|km&_format=xml")
        .await;
    assert_eq!(xml.status, 200, "{}", xml.text);
    assert!(
        xml.text.contains(
            r#"<search><extension url="http://hl7.org/fhir/StructureDefinition/location-distance"><valueDistance><value value="0.0"/>"#
        ) || xml.text.contains(
            r#"<search><extension url="http://hl7.org/fhir/StructureDefinition/location-distance"><valueDistance><value value="0"/>"#
        ),
        "{}",
        xml.text
    );
}

crate::on_both_databases!(
    near_finds_locations_within_the_distance,
    near_results_come_nearest_first,
    near_matches_carry_their_distance,
);
