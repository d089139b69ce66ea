//! `near` on Location (http://hl7.org/fhir/R4/location.html#positional):
//! `latitude|longitude|distance|units` by great-circle distance.

use serde_json::{json, Value};

use super::{create_id, ids, set};
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

crate::on_both_databases!(near_finds_locations_within_the_distance);
