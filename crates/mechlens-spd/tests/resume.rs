//! A decomposition saved part-way and loaded into a fresh one continues to the same bits as
//! the run that never stopped (SPD and APD): the file keeps AdamW's moments and the log, and
//! each step's batch and noise come from a seed of its own.
//!
//! One test in its own binary: libtorch's generator is global to the process, and tests in
//! one binary run on parallel threads that would draw from it in between.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mechlens_spd::{Apd, ApdConfig, Spd, SpdConfig};
use tch::Tensor;

mod common;
use common::{five_pieces, sparse_batch};

fn same_bits(a: &[Tensor], b: &[Tensor], what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.equal(y),
            "{what}: tensor {i} differs by {}",
            (x - y).abs().max()
        );
    }
}

#[test]
fn a_stopped_and_resumed_decomposition_is_the_uninterrupted_one() {
    let (model, _) = five_pieces();
    let dir = std::env::temp_dir().join(format!("mechlens-spd-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let data = &mut |_: usize| Ok(sparse_batch(256));

    let spd_config = SpdConfig {
        c: 8,
        batch_size: 256,
        steps: 40,
        log_every: 5,
        faithfulness_warmup_steps: 20,
        ..SpdConfig::default()
    };
    let mut straight = Spd::new(&model, &["map"], spd_config.clone()).unwrap();
    straight.train(&model, data).unwrap();
    let mut first = Spd::new(&model, &["map"], spd_config.clone()).unwrap();
    first.train_steps(&model, data, 17).unwrap();
    assert_eq!(first.step(), 17);
    let path = dir.join("spd.safetensors");
    first.save(&path).unwrap();
    let mut resumed = Spd::new(&model, &["map"], spd_config.clone()).unwrap();
    resumed.load_parameters(&path).unwrap();
    resumed.train(&model, data).unwrap();
    same_bits(&resumed.parameters(), &straight.parameters(), "SPD");
    assert_eq!(
        resumed.log_frame().unwrap(),
        straight.log_frame().unwrap(),
        "SPD log"
    );

    // The same file without the optimiser's state (as files saved before it was kept) loads
    // with fresh moments, and the same steps then end elsewhere: the check above can fail.
    let saved = mechlens_checkpoint::safetensors::read(&path).unwrap();
    let kept: Vec<(&str, Tensor)> = saved
        .iter()
        .filter(|(n, _)| !n.starts_with("adam."))
        .map(|(n, t)| (n.as_str(), t.shallow_clone()))
        .collect();
    let stateless = dir.join("spd-stateless.safetensors");
    mechlens_checkpoint::safetensors::write(&kept, &stateless).unwrap();
    let mut forgetful = Spd::new(&model, &["map"], spd_config).unwrap();
    forgetful.load_parameters(&stateless).unwrap();
    assert_eq!(forgetful.step(), 17);
    forgetful.train(&model, data).unwrap();
    assert!(
        !forgetful.parameters()[0].equal(&straight.parameters()[0]),
        "fresh moments should change the run"
    );

    let apd_config = ApdConfig {
        c: 5,
        rank: Some(2),
        batch_size: 256,
        steps: 40,
        log_every: 5,
        ..ApdConfig::default()
    };
    let mut straight = Apd::new(&model, &["map"], apd_config.clone()).unwrap();
    straight.train(&model, data).unwrap();
    let mut first = Apd::new(&model, &["map"], apd_config.clone()).unwrap();
    first.train_steps(&model, data, 23).unwrap();
    let path = dir.join("apd.safetensors");
    first.save(&path).unwrap();
    let mut resumed = Apd::new(&model, &["map"], apd_config).unwrap();
    resumed.load_parameters(&path).unwrap();
    resumed.train(&model, data).unwrap();
    same_bits(&resumed.parameters(), &straight.parameters(), "APD");
    assert_eq!(
        resumed.log_frame().unwrap(),
        straight.log_frame().unwrap(),
        "APD log"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
