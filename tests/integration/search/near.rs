//! `near` on Location (http://hl7.org/fhir/R4/location.html#positional):
//! `latitude|longitude|distance|units` by great-circle distance.

use serde_json::{json, Value};

use super::{create_id, ids, match_ids, search, set};
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

crate::on_both_databases!(
    near_finds_locations_within_the_distance,
    near_results_come_nearest_first
);
