//! Calibration aid for the superposition reproduction: trains each experiment and prints
//! what the notebook asserts.
use mechlens_toys::{ToyModel, ToyModelOptions, ToyTrainOptions};
use tch::Kind;

fn main() -> mechlens_core::Result<()> {
    let which = std::env::args().nth(1).unwrap_or_default();
    let t = std::time::Instant::now();
    if which == "pentagon" {
        let mut m = ToyModel::new(&ToyModelOptions::uniform(5, 2, 8, 1.0, 0.05))?;
        m.train(&ToyTrainOptions::default())?;
        let norms = m.feature_norms()?;
        for i in 0..8 {
            let mut a = m.angles_2d(i)?;
            a.sort_by(f64::total_cmp);
            let gaps: Vec<f64> = (0..5)
                .map(|j| (a[(j + 1) % 5] - a[j]).rem_euclid(360.0))
                .collect();
            println!(
                "inst {i}: norms {:?} gaps {:?}",
                Vec::<f64>::try_from(norms.get(i as i64).to_kind(Kind::Double))?,
                gaps
            );
        }
    } else if which == "dense" {
        let mut m = ToyModel::new(&ToyModelOptions::per_instance(
            5,
            2,
            4,
            |_, i| 0.9f64.powi(i as i32),
            |_, _| 1.0,
        ))?;
        m.train(&ToyTrainOptions::default())?;
        println!("{}", m.feature_norms()?);
    } else if which == "sweep" {
        let k = 30;
        let p = |inst: usize| 10f64.powf(-3.0 * inst as f64 / (k - 1) as f64);
        let mut m = ToyModel::new(&ToyModelOptions::per_instance(
            100,
            10,
            k,
            |_, _| 1.0,
            move |inst, _| p(inst),
        ))?;
        m.train(&ToyTrainOptions {
            steps: 10_000,
            ..Default::default()
        })?;
        let dstar: Vec<f64> = Vec::try_from(m.dimensions_per_feature()?.to_kind(Kind::Double))?;
        let dims = m.feature_dimensionality()?;
        let norms = m.feature_norms()?;
        for i in 0..k {
            let d: Vec<f64> = Vec::try_from(dims.get(i as i64).to_kind(Kind::Double))?;
            let n: Vec<f64> = Vec::try_from(norms.get(i as i64).to_kind(Kind::Double))?;
            let rep: Vec<f64> = d
                .iter()
                .zip(&n)
                .filter(|(_, n)| **n > 0.5)
                .map(|(d, _)| *d)
                .collect();
            let near_half = rep.iter().filter(|d| (*d - 0.5).abs() <= 0.05).count();
            println!(
                "p {:.4} D* {:.3} represented {} near 1/2 {}",
                p(i),
                dstar[i],
                rep.len(),
                near_half
            );
        }
    } else {
        for (r, p) in [(0.5, 1.0), (2.0, 1.0), (1.0, 0.05)] {
            let mut m = ToyModel::new(&ToyModelOptions::per_instance(
                2,
                1,
                4,
                move |_, i| if i == 0 { 1.0 } else { r },
                move |_, _| p,
            ))?;
            m.train(&ToyTrainOptions::default())?;
            println!("r {r} p {p}: W {}", m.w.get(0));
        }
    }
    println!("{:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}
