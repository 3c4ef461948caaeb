//! Online fine-tuning from the CLI on the real sim: EXPO, WSRL's warm start (SAC-style updates,
//! no offline data), H2O with "real" data from a sim whose dynamics differ, and `curves`.

mod common;

use std::path::Path;

use common::{armstack, run_err, run_ok};

fn args(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("online_report.json")).unwrap()).unwrap()
}

fn curve_steps(dir: &Path) -> Vec<u64> {
    std::fs::read_to_string(dir.join("curve.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

fn metric(dir: &Path, key: &str) -> Vec<f64> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?.get(key)?.as_f64())
        .collect()
}

const SMALL: &str = "--log-every 5 --batch-size 16 --num-envs 2 --critics 2 --eval-episodes 2 --checkpoint-every 40";

#[test]
fn expo_wsrl_h2o_and_curves_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run_ok(
        armstack(dir)
            .args(args("record --dataset demos --scene pick_cube --device scripted --episodes 3 --no-cameras")),
    );
    run_ok(
        armstack(dir).args(args(
            "train bc --dataset demos --out runs/bc --horizon 5 --steps 30 --batch-size 32 --eval-episodes 0",
        )),
    );

    // EXPO: UTD 0.5 over 60 env steps = 30 critic updates; evaluations at 0, 30 and 60.
    let out = run_ok(armstack(dir).args(args(&format!(
        "train expo --init runs/bc --dataset demos --out runs/expo --online-steps 60 --utd 0.5 --eval-every 30 \
         --samples 2 --hidden 32 --base-steps 5 {SMALL}"
    ))));
    assert!(out.contains("expo: 60 env steps"), "{out}");
    let expo = dir.join("runs/expo");
    assert_eq!(curve_steps(&expo), vec![0, 30, 60]);
    let r = report(&expo);
    assert_eq!(r["critic_updates"], 30, "{r}");
    assert_eq!(r["actor_updates"], 30, "one actor update per env step at UTD 0.5 (--actor-every 1)");
    for f in ["model.mpk", "flow.mpk", "edit.mpk", "critic.mpk", "policy.json", "online.json", "curve.png"] {
        assert!(expo.join(f).exists(), "no {f}");
    }
    assert!(metric(&expo, "td").iter().all(|v| v.is_finite()) && !metric(&expo, "td").is_empty());
    let online: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(expo.join("online.json")).unwrap()).unwrap();
    assert_eq!(online["algo"]["algorithm"], "expo");
    assert_eq!(online["algo"]["beta"], 0.05);

    // Offline batches need demonstrations.
    let err = run_err(armstack(dir).args(args("train expo --init runs/bc --out runs/x --online-steps 10")));
    assert!(err.contains("--offline-ratio 0"), "{err}");

    // WSRL: 130 warm-up steps with the pre-trained policy (both envs finish an episode of at most
    // 60 steps in them), no offline data, then UTD 1: exactly 30 critic updates, none before the
    // warm-up ends.
    let out = run_ok(armstack(dir).args(args(&format!(
        "train sac --init runs/bc --out runs/wsrl --offline-ratio 0 --warmup 130 --online-steps 160 --utd 1 \
         --eval-every 0 {SMALL}"
    ))));
    assert!(out.contains("sac: 160 env steps"), "{out}");
    let wsrl = dir.join("runs/wsrl");
    let r = report(&wsrl);
    assert_eq!((r["critic_updates"].as_u64(), r["skipped_updates"].as_u64()), (Some(30), Some(0)), "{r}");
    assert!(r["train_episodes"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(curve_steps(&wsrl), vec![0, 160]);
    let logged: Vec<serde_json::Value> = std::fs::read_to_string(wsrl.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("td").is_some())
        .collect();
    assert!(!logged.is_empty());
    assert!(logged.iter().all(|v| v["env_steps"].as_u64().unwrap() > 130), "updates only after the warm-up");

    // H2O: "real" data from a sim whose motors are half as stiff and objects three times heavier.
    let scene = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sim/scenes/pick_cube.toml"))
        .unwrap()
        .replace("mass_scale = [0.8, 1.2]", "mass_scale = [3.0, 3.0]")
        .replace("motor_gain_scale = [0.9, 1.1]", "motor_gain_scale = [0.5, 0.5]");
    assert!(scene.contains("[3.0, 3.0]") && scene.contains("[0.5, 0.5]"));
    std::fs::write(dir.join("pick_cube.toml"), scene).unwrap();
    run_ok(armstack(dir).args(args(
        "record --dataset real --scene pick_cube.toml --device scripted --episodes 2 --no-cameras --seed 50",
    )));
    let out = run_ok(armstack(dir).args(args(&format!(
        "train h2o --init runs/bc --real real --scene pick_cube --out runs/h2o --online-steps 160 --utd 0.5 \
         --eval-every 0 {SMALL}"
    ))));
    assert!(out.contains("h2o: 160 env steps"), "{out}");
    let h2o = dir.join("runs/h2o");
    let weights = metric(&h2o, "weight_sim");
    assert!(!weights.is_empty(), "sim TD errors were weighted");
    assert!(weights.iter().all(|w| (1e-5..=1.0).contains(w)), "{weights:?}");
    assert!(metric(&h2o, "rho_sim").iter().all(|r| r.is_finite() && *r > 0.0));
    assert!(h2o.join("discriminators.mpk").exists());
    let err = run_err(armstack(dir).args(args("train h2o --init runs/bc --out runs/y")));
    assert!(err.contains("--real"), "{err}");

    // Curves of several runs: one PNG, one CSV, steps to the baseline's final success.
    let out = run_ok(armstack(dir).args(args(
        "curves --group pick_cube/EXPO=runs/expo --group pick_cube/WSRL=runs/wsrl --baseline WSRL --out fig",
    )));
    assert!(out.contains("EXPO") && out.contains("WSRL"), "{out}");
    let csv = std::fs::read_to_string(dir.join("fig/curves.csv")).unwrap();
    assert!(csv.starts_with("panel,label,env_steps,mean_success"), "{csv}");
    assert_eq!(csv.lines().filter(|l| l.contains(",EXPO,")).count(), 3, "{csv}");
    let png = std::fs::read(dir.join("fig/curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
}
