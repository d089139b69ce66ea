//! `charaka audit verify` and `charaka audit checkpoint`.

use clap::Subcommand;

use crate::config::Config;
use crate::service::Fhir;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the audit trail's hash chain and signed checkpoints; exits
    /// non-zero and names each record that was modified, deleted, inserted
    /// or reordered.
    Verify,
    /// Sign a checkpoint of the chain's current head now (the server also
    /// does this periodically).
    Checkpoint,
}

pub async fn run(config: Config, command: AuditCommand) -> anyhow::Result<()> {
    let store = Store::connect(&config).await?;
    let fhir = Fhir::new(store, &config);
    let auth = crate::auth::Auth::start(&fhir.store, &config).await?;
    let result = match command {
        AuditCommand::Verify => {
            let report =
                super::verify::verify(&fhir, |jws| super::checkpoint::verify_signature(&auth, jws))
                    .await?;
            if report.ok() {
                println!(
                    "audit trail intact: {} records, {} signed checkpoints",
                    report.records, report.checkpoints
                );
                Ok(())
            } else {
                for p in &report.problems {
                    println!("{}", p.message);
                }
                Err(anyhow::anyhow!(
                    "the audit trail has been tampered with: {} problems in {} records",
                    report.problems.len(),
                    report.records
                ))
            }
        }
        AuditCommand::Checkpoint => {
            match super::checkpoint::checkpoint(&fhir, &auth).await? {
                Some(seq) => println!("signed a checkpoint at record {seq}"),
                None => {
                    println!("nothing to sign: the head is already signed (or the trail is empty)")
                }
            }
            Ok(())
        }
    };
    fhir.store.close().await;
    result
}
