//! `charaka keys`: data keys for encryption at rest: generate a key file,
//! rotate (new active key, then re-encrypt), resume re-encryption, show
//! how many stored values each key seals, remove a key no value needs.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Subcommand;

use crate::config::Config;
use crate::store::keyring::KeyFile;
use crate::store::Store;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new key file: one data key (active) and a blind index key.
    /// Without --out the content is printed (for CHARAKA_DATA_KEYS).
    Generate {
        /// The file to write (mode 0600; never overwritten).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Add a new active data key to the key file, then re-encrypt every
    /// stored value under it (batches, progress bar; serving goes on).
    /// Restart running servers afterwards so they write with the new key.
    Rotate {
        #[command(flatten)]
        run: RunOptions,
    },
    /// Re-encrypt every value not yet under the active key: resumes an
    /// interrupted rotation, or seals values written before encryption.
    Reencrypt {
        #[command(flatten)]
        run: RunOptions,
    },
    /// How many stored values each data key seals, per table.
    Status,
    /// Remove a data key from the key file once no stored value needs it.
    Remove {
        /// The key id (see `charaka keys status`).
        id: u32,
    },
}

#[derive(Debug, clap::Args)]
pub struct RunOptions {
    /// Rows per transaction.
    #[arg(long, default_value_t = 200)]
    pub batch: i64,
    /// Stop after this many batches (run again to continue).
    #[arg(long)]
    pub max_batches: Option<u64>,
}

/// The key file `keys rotate` and `keys remove` change.
fn key_file_path(config: &Config) -> anyhow::Result<PathBuf> {
    if config.data_keys.is_some() {
        bail!(
            "the data keys come from CHARAKA_DATA_KEYS: changing them needs a key file \
             (--data-keys-file); or edit the variable's content yourself"
        );
    }
    config
        .data_keys_file
        .clone()
        .or_else(|| crate::store::default_key_file(&config.database_url))
        .context("no data key file is configured (data_keys_file, --data-keys-file)")
}

pub async fn run(config: Config, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate { out } => {
            let file = KeyFile::generate();
            match out {
                Some(path) => {
                    file.save(&path, false)?;
                    println!(
                        "wrote {} (data key 1, active). Back it up apart from the database.",
                        path.display()
                    );
                }
                None => print!("{}", file.to_toml()),
            }
            Ok(())
        }
        KeysCommand::Rotate { run } => {
            let path = key_file_path(&config)?;
            // Opening checks the present keys against the database first.
            Store::connect(&config).await?.close().await;
            let mut file = KeyFile::load(&path)?;
            let id = file.add_active();
            file.save(&path, true)?;
            println!(
                "added data key {id} to {} as the active key",
                path.display()
            );
            reencrypt(&config, &run).await
        }
        KeysCommand::Reencrypt { run } => reencrypt(&config, &run).await,
        KeysCommand::Status => {
            let store = Store::connect(&config).await?;
            let counts = store.rows_per_key().await?;
            let pending = store.reencrypt_pending().await?;
            match store.active_data_key() {
                Some(id) => println!("encryption on, active data key {id}"),
                None => println!("encryption off"),
            }
            for c in counts {
                let key = c.key.map_or("plain".to_string(), |k| format!("key {k}"));
                println!("{:<20} {:<8} {}", c.table, key, c.rows);
            }
            println!("values not under the active key: {pending}");
            store.close().await;
            Ok(())
        }
        KeysCommand::Remove { id } => {
            let path = key_file_path(&config)?;
            let store = Store::connect(&config).await?;
            let left: i64 = store
                .rows_per_key()
                .await?
                .iter()
                .filter(|c| c.key == Some(id))
                .map(|c| c.rows)
                .sum();
            if left > 0 {
                store.close().await;
                bail!(
                    "{left} stored values are still sealed with data key {id}: run `charaka keys reencrypt` first"
                );
            }
            store.forget_data_key(id).await?;
            store.close().await;
            let mut file = KeyFile::load(&path)?;
            file.remove(id)?;
            file.save(&path, true)?;
            println!("removed data key {id} from {}", path.display());
            Ok(())
        }
    }
}

async fn reencrypt(config: &Config, run: &RunOptions) -> anyhow::Result<()> {
    anyhow::ensure!(run.batch >= 1, "--batch must be at least 1");
    let store = Store::connect(config).await?;
    let Some(active) = store.active_data_key() else {
        store.close().await;
        bail!("encryption is off: there is nothing to re-encrypt");
    };
    let total = store.reencrypt_pending().await?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} values re-encrypted ({per_sec}, {eta} left)",
        )
        .expect("a valid progress template"),
    );
    let outcome = store
        .reencrypt(run.batch, run.max_batches, |done| bar.set_position(done))
        .await;
    bar.finish();
    store.close().await;
    let outcome = outcome?;
    if outcome.finished {
        println!(
            "done: every stored value is sealed with data key {active} ({} re-encrypted); \
             older keys can be removed with `charaka keys remove ID` (keep them while backups \
             made before need them)",
            outcome.rewritten
        );
    } else {
        println!(
            "stopped after {} values; run `charaka keys reencrypt` to continue",
            outcome.rewritten
        );
    }
    Ok(())
}
