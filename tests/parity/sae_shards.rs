//! Activation shards on disk: what we write reads back exactly, in Python too (hashlib and
//! the safetensors package, not our reader); the mixing buffer visits every row once per
//! epoch, deterministically; damaged or missing files are named, not read.

use std::path::Path;

use mechlens_sae::shards::{MANIFEST_FILE, ShardWriter, ShardedActivations};
use mechlens_sae::train::{ActivationSource, TrainArchitecture, TrainConfig, Trainer};
use tch::{Device, Kind, Tensor};

use mechlens_tests::{run_check, temp_dir};

const N: i64 = 1000;
const D: i64 = 16;

/// `[N, D]` random rows whose column 0 is the row's index, so a batch says where it came from.
fn rows() -> Tensor {
    tch::manual_seed(11);
    let rows = Tensor::randn([N, D], (Kind::Float, Device::Cpu));
    let ids = Tensor::arange(N, (Kind::Float, Device::Cpu));
    rows.index_copy(1, &Tensor::from_slice(&[0i64]), &ids.unsqueeze(1))
}

fn write(dir: &Path, rows: &Tensor) {
    let mut writer = ShardWriter::create(dir, "blocks.0.hook_resid_post", D, 128).unwrap();
    // In uneven pieces: shards fill across pushes.
    writer.push(&rows.narrow(0, 0, 300)).unwrap();
    writer.push(&rows.narrow(0, 300, 1)).unwrap();
    writer.push(&rows.narrow(0, 301, N - 301)).unwrap();
    let manifest = writer.finish().unwrap();
    assert_eq!(manifest.n_rows, N);
    assert_eq!(
        manifest.shards.len(),
        8,
        "7 full shards of 128 and one of 104"
    );
    assert_eq!(manifest.shards[7].rows, 104);
}

fn ids(batch: &Tensor) -> Vec<i64> {
    Vec::<f32>::try_from(batch.select(1, 0))
        .unwrap()
        .iter()
        .map(|&v| v as i64)
        .collect()
}

#[test]
fn shards_read_back_exactly_in_python_and_ours() {
    let dir = temp_dir("shards");
    let rows = rows();
    write(&dir.join("shards"), &rows);
    Tensor::write_safetensors(
        &[("rows", rows.shallow_clone())],
        dir.join("expected.safetensors"),
    )
    .unwrap();
    run_check("check_shards.py", &dir);
    let reader = ShardedActivations::open(&dir.join("shards")).unwrap();
    assert_eq!(reader.len(), N);
    assert!(reader.load_all().unwrap().equal(&rows));
    assert_eq!(reader.manifest().hook_name, "blocks.0.hook_resid_post");
}

#[test]
fn mixing_buffer_visits_every_row_once_per_epoch() {
    let dir = temp_dir("shards-mix");
    write(&dir, &rows());
    let mut source = ShardedActivations::open(&dir).unwrap().with_mixing(3, 7);
    assert_eq!(source.d_in(), D);
    // 10 batches of 100 = one epoch; step 10 starts the next.
    let epoch: Vec<i64> = (0..10)
        .flat_map(|s| ids(&source.batch(s, 100).unwrap()))
        .collect();
    let mut sorted = epoch.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        (0..N).collect::<Vec<_>>(),
        "each row exactly once per epoch"
    );
    let first = &epoch[..100];
    let shards_in_first: std::collections::BTreeSet<i64> = first.iter().map(|i| i / 128).collect();
    assert!(
        shards_in_first.len() >= 2,
        "a batch mixes rows of several shards: {shards_in_first:?}"
    );
    assert_ne!(
        first,
        &(first[0]..first[0] + 100).collect::<Vec<_>>()[..],
        "rows are shuffled"
    );
    let next = ids(&source.batch(10, 100).unwrap());
    assert_ne!(next, first, "a new order each epoch");
    // Batches are addressed by step: another reader with the same seed, asked out of order,
    // gives the same rows; another seed gives others. A batch straddling epochs is whole.
    let mut again = ShardedActivations::open(&dir).unwrap().with_mixing(3, 7);
    assert_eq!(ids(&again.batch(7, 100).unwrap()), epoch[700..800]);
    assert_eq!(ids(&again.batch(0, 100).unwrap()), first);
    let mut other = ShardedActivations::open(&dir).unwrap().with_mixing(3, 8);
    assert_ne!(ids(&other.batch(0, 100).unwrap()), first);
    assert_eq!(again.batch(3, 333).unwrap().size(), [333, D]);
}

#[test]
fn training_reads_shards_without_a_model() {
    let dir = temp_dir("shards-train");
    write(&dir, &rows());
    let mut source = ShardedActivations::open(&dir).unwrap();
    let mut trainer = Trainer::new(
        TrainConfig::new(TrainArchitecture::topk(4), D, 32)
            .batch_size(64)
            .total_steps(5),
    )
    .unwrap();
    trainer.run(&mut source).unwrap();
    assert_eq!(trainer.step(), 5);
}

#[test]
fn damaged_or_missing_shards_are_named() {
    let dir = temp_dir("shards-bad");
    write(&dir, &rows());
    // One byte changed in shard 3's data.
    let path = dir.join("shard_00003.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 5;
    bytes[last] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let reader = ShardedActivations::open(&dir).unwrap();
    let err = reader.shard(3).unwrap_err().to_string();
    assert!(
        err.contains("shard_00003.safetensors") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(reader.shard(2).is_ok(), "the other shards still read");
    let err = reader.shard(8).unwrap_err().to_string();
    assert!(err.contains("shard") && err.contains('8'), "{err}");
    // Training over it stops with the same error, before any update from that batch.
    let mut source = ShardedActivations::open(&dir).unwrap().with_mixing(8, 0);
    let mut trainer = Trainer::new(
        TrainConfig::new(TrainArchitecture::standard(1.0), D, 32)
            .batch_size(64)
            .total_steps(5),
    )
    .unwrap();
    let err = trainer.run(&mut source).unwrap_err().to_string();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(trainer.step(), 0);

    std::fs::remove_file(dir.join("shard_00005.safetensors")).unwrap();
    let err = ShardedActivations::open(&dir).err().unwrap().to_string();
    assert!(
        err.contains("shard_00005.safetensors") && err.contains("missing"),
        "{err}"
    );

    std::fs::write(dir.join(MANIFEST_FILE), "{\"format\": \"something else\"}").unwrap();
    let err = ShardedActivations::open(&dir).err().unwrap().to_string();
    assert!(err.contains("manifest.json"), "{err}");
    let err = ShardedActivations::open(&dir.join("nowhere"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("nowhere") && err.contains("manifest.json"),
        "{err}"
    );
}

#[test]
fn bad_rows_and_reused_folders_are_refused() {
    let dir = temp_dir("shards-refuse");
    write(&dir, &rows());
    let err = ShardWriter::create(&dir, "h", D, 128)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("already holds activations"), "{err}");
    let mut writer = ShardWriter::create(&dir.join("new"), "h", D, 128).unwrap();
    let err = writer
        .push(&Tensor::zeros([4, D + 1], (Kind::Float, Device::Cpu)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("[n, {D}]")) && err.contains("17"),
        "{err}"
    );
    let nan = Tensor::full([4, D], f64::NAN, (Kind::Float, Device::Cpu));
    let err = writer.push(&nan).unwrap_err().to_string();
    assert!(err.contains("NaN"), "{err}");
    let err = writer.finish().unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    assert!(ShardWriter::create(&dir.join("zero"), "h", D, 0).is_err());
}
