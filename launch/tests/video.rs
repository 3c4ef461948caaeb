//! `armstack video ingest` and `armstack train icvf` end to end on a file the `ffmpeg` CLI makes.

mod common;

use common::{armstack, run_err, run_ok};

#[test]
fn ingest_then_icvf_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("videos")).unwrap();
    let ok = std::process::Command::new("ffmpeg")
        .current_dir(dir.join("videos"))
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=s=80x60:r=20:d=2", "-c:v", "ffv1", "a.mkv"])
        .status()
        .expect("the ffmpeg CLI is needed (apt install ffmpeg)");
    assert!(ok.success());
    std::fs::write(dir.join("videos/readme.txt"), "not a video").unwrap();
    let out = run_ok(
        armstack(dir).args(["video", "ingest", "--videos", "videos", "--out", "frames", "--size", "32", "--fps", "5"]),
    );
    assert!(out.contains("1 episodes, 1 skipped") && out.contains("40 frames decoded, 10 written"), "{out}");
    assert!(out.contains("skipped videos/readme.txt"), "{out}");
    let err = run_err(armstack(dir).args(["video", "ingest", "--videos", "videos", "--out", "frames"]));
    assert!(err.contains("not empty"), "{err}");
    let out = run_ok(armstack(dir).args([
        "train",
        "icvf",
        "--frames",
        "frames",
        "--out",
        "runs/icvf",
        "--steps",
        "2",
        "--batch-size",
        "2",
        "--hidden",
        "16",
    ]));
    assert!(out.contains("icvf: 2 steps on 10 frames (1 episodes)"), "{out}");
    assert!(dir.join("runs/icvf/encoder.mpk").exists() && dir.join("runs/icvf/icvf.json").exists());
    let err = run_err(armstack(dir).args(["train", "icvf", "--frames", "videos", "--out", "runs/x"]));
    assert!(err.contains("manifest.json"), "{err}");
}

/// Mean absolute difference of two encoders' features on the same (random) images.
fn feature_gap(
    a: &policy::model::image::ImageEncoder<policy::Cpu>,
    b: &policy::model::image::ImageEncoder<policy::Cpu>,
) -> f32 {
    use burn::tensor::{Distribution, Tensor};
    let device = Default::default();
    let x = Tensor::<policy::Cpu, 4>::random([3, 3, 32, 32], Distribution::Uniform(-1.0, 1.0), &device);
    let d = (a.forward(x.clone()) - b.forward(x)).abs().mean();
    d.into_scalar()
}

/// V-PTR and SS-ORL from the CLI: an ICVF encoder starts a vision policy (its weights arrive
/// unchanged: lr 0), an IDM trained on part of a recording labels the rest, and training can
/// keep or leave out the proxy labels.
#[test]
fn encoder_hand_off_and_idm_labels_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cams = [
        "record",
        "--dataset",
        "vision",
        "--scene",
        "reach",
        "--device",
        "scripted",
        "--episodes",
        "2",
        "--image-size",
        "32",
    ];
    run_ok(armstack(dir).args(cams));
    run_ok(armstack(dir).args([
        "video",
        "ingest",
        "--dataset",
        "vision",
        "--out",
        "frames",
        "--size",
        "32",
        "--fps",
        "10",
    ]));
    let icvf =
        ["train", "icvf", "--frames", "frames", "--out", "icvf", "--steps", "2", "--batch-size", "2", "--hidden", "16"];
    run_ok(armstack(dir).args(icvf));
    let bc = |variant: &str, out: &str| {
        let mut c = armstack(dir);
        c.args(["train", "bc", "--dataset", "vision", "--variant", variant, "--out", out, "--encoder", "icvf"]);
        c.args(["--steps", "1", "--batch-size", "2", "--lr", "0", "--eval-episodes", "0"]);
        c
    };
    run_ok(&mut bc("vision", "runs/vptr"));
    let device = Default::default();
    let pol = policy::Policy::<policy::Cpu>::load(&dir.join("runs/vptr"), &device).expect("policy");
    assert_eq!(pol.spec.pretrained_encoder.as_deref(), Some("icvf"));
    let enc = pol.model.image_encoder().expect("a vision policy");
    let image_cfg = pol.spec.config.image.clone().expect("image config");
    let icvf_enc =
        policy::pretrained::load_encoder::<policy::Cpu>(&dir.join("icvf"), &image_cfg, &device).expect("enc");
    assert!(feature_gap(enc, &icvf_enc) < 1e-6, "the policy's encoder is the ICVF encoder");
    let fresh = policy::model::image::ImageEncoder::<policy::Cpu>::new(&image_cfg, &device);
    assert!(feature_gap(&fresh, &icvf_enc) > 1e-3, "a fresh encoder differs");
    let err = run_err(&mut bc("state", "runs/x"));
    assert!(err.contains("vision policy"), "{err}");

    // SS-ORL: half the episodes labelled, the rest proxy-labelled.
    let rec =
        ["record", "--dataset", "state", "--scene", "reach", "--device", "scripted", "--episodes", "6", "--no-cameras"];
    run_ok(armstack(dir).args(rec));
    let idm = [
        "train",
        "idm",
        "--dataset",
        "state",
        "--out",
        "idm",
        "--labelled-fraction",
        "0.5",
        "--steps",
        "20",
        "--batch-size",
        "64",
        "--hidden",
        "32",
    ];
    let out = run_ok(armstack(dir).args(idm));
    assert!(out.contains("on 3 labelled episodes of 6 (1 for validation)"), "{out}");
    let out = run_ok(armstack(dir).args([
        "dataset",
        "label",
        "--idm",
        "idm",
        "--dataset",
        "state",
        "--out",
        "proxy",
        "--json",
    ]));
    let report: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(report["kept_episodes"], 3);
    assert!(report["proxy_frames"].as_u64().unwrap() > 0 && report["proxy_rmse"].as_f64().unwrap() >= 0.0);
    let info = run_ok(armstack(dir).args(["dataset", "info", "proxy"]));
    assert!(info.contains("action.is_proxy"), "{info}");
    let train = |extra: &[&str], out: &str| {
        let mut c = armstack(dir);
        c.args(["train", "bc", "--dataset", "proxy", "--out", out, "--steps", "2", "--batch-size", "8"]);
        c.args(["--eval-episodes", "0"]).args(extra);
        run_ok(&mut c)
    };
    train(&[], "runs/all");
    train(&["--skip-proxy-labels"], "runs/true_only");
    let err = run_err(armstack(dir).args(["dataset", "label", "--idm", "idm", "--dataset", "state", "--out", "proxy"]));
    assert!(err.contains("already exists"), "{err}");
}
