//! Trains the 2-layer attention-only induction model and prints its curve (timing aid).
use mechlens_models::{HookedTransformer, HookedTransformerConfig};
use mechlens_toys::{InductionData, InductionOptions, masked_next_token_loss};
use mechlens_train::{ModelTrainConfig, ModelTrainer, Schedule};

fn main() -> mechlens_core::Result<()> {
    let layers: usize = std::env::args().nth(1).map_or(2, |a| a.parse().unwrap());
    let steps: usize = std::env::args().nth(2).map_or(3000, |a| a.parse().unwrap());
    let cfg = HookedTransformerConfig {
        n_layers: layers,
        d_model: 64,
        n_heads: 4,
        d_vocab: 64,
        n_ctx: 64,
        attn_only: true,
        normalization_type: if std::env::var("NORM").is_ok() {
            Some(mechlens_models::NormType::LayerNorm)
        } else {
            None
        },
        ..Default::default()
    };
    let model = HookedTransformer::from_config(&cfg, 0)?;
    let probe = InductionData::new(InductionOptions {
        batch: 64,
        seed: 999,
        ..Default::default()
    })?
    .sample(0)?;
    let train = ModelTrainConfig::new(steps, Schedule::constant(2e-3)).log_every(250);
    let mut trainer = ModelTrainer::new(model, train)?.with_metric("repeated", 250, move |m| {
        masked_next_token_loss(&m.forward(&probe.tokens)?, &probe.tokens, &probe.induction)
    });
    let mut data = InductionData::new(InductionOptions::default())?;
    let t = std::time::Instant::now();
    trainer.run(&mut data)?;
    println!("{steps} steps in {:.1} s", t.elapsed().as_secs_f64());
    println!("{}", trainer.log_frame()?);
    Ok(())
}
