"""The training engine and `xfr train`: every mode and loss trains, resume keeps the step count, cancel leaves a
usable checkpoint, each way a run stops is logged, bad settings and base models get clear errors."""
from __future__ import annotations

import json
import threading

import cv2
import numpy as np
import pytest
import torch

from xfr_desktop.core.decoder import paper_decoder_spec
from xfr_desktop.core.errors import ModelFileError, XfrError
from xfr_desktop.core.model import ARCFACE_TEMPLATE_112, JointModel, default_spec, load_model, save_model
from xfr_desktop.core.training.base_model import insightface_spec, inspect_base
from xfr_desktop.core.training.checkpoint import read_resume_settings
from xfr_desktop.core.training.config import CHECKPOINT_NAME, TrainConfig, TrainingError
from xfr_desktop.core.training.planning import check_disk_space
from xfr_desktop.core.training.trainer import Trainer
from xfr_desktop.core.training.validation import pair_accuracy
from xfr_desktop.core.training.losses import ArcFaceHead, distillation_loss, reconstruction_loss

SIZE = 32


def small_spec() -> dict:
    """iresnet-18, widths 8/8/16/16, 32x32 input: C is 16x2x2, the decoder upsamples 2 -> 32."""
    return default_spec(name="tiny-train", depth=18, widths=[8, 8, 16, 16], channels=16, input_size=[SIZE, SIZE],
                        template=[[v * SIZE / 112 for v in pt] for pt in ARCFACE_TEMPLATE_112],
                        decoder=paper_decoder_spec((16, 16, 8, 8, 3)))


def make_identity_folder(root, n_ids=3, per_id=4, size=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    for c in range(n_ids):
        mean = rng.integers(0, 255, (size, size, 3))
        d = root / f"person_{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_id):
            img = np.clip(mean + rng.normal(0, 20, mean.shape), 0, 255).astype(np.uint8)
            assert cv2.imwrite(str(d / f"{i:02d}.png"), img)
    return root


@pytest.fixture
def workdir(tmp_path):
    torch.manual_seed(0)
    save_model(JointModel(small_spec()), tmp_path / "base.pt")
    make_identity_folder(tmp_path / "data")
    return tmp_path


def config(workdir, out="run", **kw) -> TrainConfig:
    values = dict(data=str(workdir / "data"), out=str(workdir / out), base=str(workdir / "base.pt"),
                  batch_size=4, epochs=1, log_every=1, device="cpu", val_limit=20)
    values.update(kw)
    return TrainConfig(**values)


def state(model) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


# --- losses ---------------------------------------------------------------------------------------------------
def test_arcface_margin_penalizes_the_true_class():
    torch.manual_seed(0)
    head = ArcFaceHead(8, 4, s=64.0, m=0.5)
    emb = head.weight.detach()[:2].clone()  # embeddings on their class centres: cos = 1
    labels = torch.tensor([0, 1])
    loss_margin = head(emb, labels)
    head.m = 0.0
    head._cos_m, head._sin_m = 1.0, 0.0
    assert head(emb, labels) < loss_margin  # the margin makes the same embedding cost more
    with pytest.raises(ValueError):
        ArcFaceHead(8, 1)


def test_distillation_and_reconstruction_losses():
    x = torch.randn(5, 8)
    assert distillation_loss(x, x).item() == pytest.approx(0.0, abs=1e-6)
    assert distillation_loss(x, -x).item() == pytest.approx(2.0, abs=1e-5)  # 1 - cos = 2; structure equal
    # the pairwise-structure term is weighted (a max-pool head collapses onto one direction at weight 1)
    y = torch.randn(5, 8)
    plain = distillation_loss(x, y, structure_weight=0.0).item()
    once = distillation_loss(x, y, structure_weight=1.0).item() - plain
    assert once > 0
    assert distillation_loss(x, y).item() - plain == pytest.approx(20 * once, rel=1e-5)   # the default weight
    assert distillation_loss(torch.randn(5, 8), torch.randn(5, 4)).item() > 0  # sizes differ: structure only
    assert reconstruction_loss(torch.zeros(2, 3), torch.full((2, 3), 2.0)).item() == pytest.approx(4.0)


def test_pair_accuracy_finds_the_separating_threshold():
    scores = np.array([0.1, 0.2, 0.6, 0.9])
    acc, thr = pair_accuracy(scores, np.array([False, False, True, True]))
    assert acc == 1.0 and thr == pytest.approx(0.4)      # the midpoint between the neighbouring scores 0.2, 0.6
    acc, _ = pair_accuracy(scores, np.array([False, True, True, False]))
    assert acc == 0.75


# --- training in each mode and loss ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode,loss", [("decoder", "arcface"), ("joint", "arcface"), ("joint", "distill")])
def test_trains_each_mode_and_loss(workdir, mode, loss):
    base = load_model(workdir / "base.pt", device="cpu")
    events = []
    result = Trainer(config(workdir, mode=mode, loss=loss, epochs=2), callback=events.append).run()
    assert not result.cancelled and result.steps == 6 and result.epochs_done == 2  # 12 images / batch 4 x 2
    trained = load_model(result.model_path, device="cpu")
    assert trained.spec["provenance"]["training"]["mode"] == mode
    changed = {part: any(not torch.equal(a, b) for a, b in zip(getattr(base, part).state_dict().values(),
                                                                getattr(trained, part).state_dict().values()))
               for part in ("backbone", "decoder")}
    assert changed["decoder"]
    assert changed["backbone"] == (mode == "joint")  # decoder mode freezes the backbone, BN statistics included
    steps = [e for e in events if e.event == "step"]
    assert len(steps) == 6 and all(np.isfinite(e.loss) and e.recon_loss > 0 for e in steps)
    assert (steps[0].id_loss > 0) == (mode == "joint")
    assert [e.val_acc is not None for e in events if e.event == "epoch"] == [True, True]
    lines = [json.loads(line) for line in open(result.log_path)]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "done"
    assert sum(rec["event"] == "checkpoint" for rec in lines) == 2  # one per epoch
    card = open(workdir / "run" / "model_card.md").read()
    assert result.model_sha256 in card and "12 images of 3 identities" in card


def test_reconstruction_loss_goes_down_in_decoder_mode(workdir):
    events = []
    Trainer(config(workdir, mode="decoder", epochs=8, batch_size=12, lr_decoder=0.01),
            callback=events.append).run()
    recon = [e.recon_loss for e in events if e.event == "step"]
    assert recon[-1] < recon[0] * 0.9


def test_resume_continues_with_the_same_step_count_and_weights(workdir):
    straight = Trainer(config(workdir, out="straight", epochs=3, max_steps=5)).run()
    first = Trainer(config(workdir, out="split", epochs=3, max_steps=2)).run()
    assert first.steps == 2
    ck = torch.load(workdir / "split" / CHECKPOINT_NAME, weights_only=True)
    assert ck["step"] == 2
    second = Trainer(config(workdir, out="split", base=str(workdir / "split"), epochs=3, max_steps=5)).run()
    assert second.steps == straight.steps == 5
    a, b = load_model(straight.model_path, device="cpu"), load_model(second.model_path, device="cpu")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.allclose(va, vb, atol=1e-6), k  # same data order, flips and optimizer state
    log_steps = [json.loads(line)["step"] for line in open(second.log_path) if '"event": "step"' in line]
    assert log_steps == [1, 2, 3, 4, 5]  # the resumed log continues where it stopped


def test_cancel_leaves_a_usable_checkpoint(workdir):
    cancel = threading.Event()

    def on_progress(p):
        if p.event == "step" and p.step == 2:
            cancel.set()

    result = Trainer(config(workdir, epochs=3), callback=on_progress, cancel_event=cancel).run()
    assert result.cancelled and result.steps == 2 and result.model_path is None
    info = inspect_base(workdir / "run")
    assert info.kind == "checkpoint" and "step 2" in info.description
    resumed = Trainer(config(workdir, base=str(workdir / "run"), epochs=3)).run()
    assert resumed.steps == 9 and load_model(resumed.model_path, device="cpu").input_size == (SIZE, SIZE)


def test_pause_blocks_until_released(workdir):
    pause = threading.Event()
    pause.set()
    events = []
    trainer = Trainer(config(workdir, max_steps=2), callback=events.append, pause_event=pause)
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:
        for _ in range(200):
            if any(e.event == "paused" for e in events):
                break
            thread.join(0.05)
        assert any(e.event == "paused" for e in events) and trainer.step == 0
    finally:
        pause.clear()
        thread.join(60)
    assert trainer.step == 2 and any(e.event == "resumed" for e in events)


@pytest.mark.parametrize("settings,stop_at,reason", [
    (dict(epochs=1), 3, "all 1 epoch(s) done"),                 # 12 images / batch 4: 3 steps an epoch
    (dict(epochs=3, max_steps=4), 4, "max_steps 4 reached"),
    (dict(epochs=3), 2, "cancel requested"),                    # the callback cancels at step 2
    # one finite step (its update breaks the weights), then four skipped ones; the fifth stops the run uncounted
    (dict(epochs=3, lr_recognition=1e30, lr_decoder=1e30), 5, "diverged: 5 non-finite losses in a row"),
])
def test_each_way_a_run_stops_is_logged(workdir, caplog, settings, stop_at, reason):
    cancel = threading.Event()
    trainer = Trainer(config(workdir, **settings), cancel_event=cancel,
                      callback=lambda p: p.event == "step" and p.step == 2 and "cancel" in reason and cancel.set())
    with caplog.at_level("INFO", logger="xfr_desktop.core.training.trainer"):
        if reason.startswith("diverged"):
            with pytest.raises(TrainingError, match="diverged"):
                trainer.run()
        else:
            assert trainer.run().cancelled == ("cancel" in reason)
    stops = [r.getMessage() for r in caplog.records if "training stopped" in r.getMessage()]
    assert stops == [f"training stopped at step {stop_at} of {trainer.total_steps}: {reason}"]
    assert trainer.stop_reason == reason and trainer.step == stop_at


def test_resume_settings_come_from_the_checkpoint(workdir):
    """What the wizard offers again for a resumed run: the settings the run was started with; at least one more
    epoch than it finished."""
    Trainer(config(workdir, mode="decoder", epochs=2, max_steps=2, seed=7, name="again")).run()
    settings = read_resume_settings(workdir / "run" / CHECKPOINT_NAME)
    assert (settings.mode, settings.loss, settings.out, settings.epochs, settings.batch_size, settings.seed,
            settings.name) == ("decoder", "arcface", str(workdir / "run"), 2, 4, 7, "again")
    Trainer(config(workdir, out="one", epochs=1, name=None)).run()     # one epoch done, one configured
    settings = read_resume_settings(workdir / "one" / CHECKPOINT_NAME)
    assert settings.epochs == 2 and settings.name is None and settings.mode == "joint"


def test_resume_with_another_mode_is_refused(workdir):
    Trainer(config(workdir, max_steps=1)).run()
    with pytest.raises(TrainingError, match="same mode"):
        Trainer(config(workdir, base=str(workdir / "run"), mode="decoder")).run()


# --- base models and settings ----------------------------------------------------------------------------------
def test_insightface_backbone_is_recognized_and_trains(workdir):
    torch.manual_seed(1)
    body = JointModel(small_spec()).backbone.state_dict()
    body = {**body, "fc.weight": torch.zeros(16, 16 * 2 * 2), "features.weight": torch.ones(16)}
    torch.save(body, workdir / "backbone.pth")
    spec = insightface_spec(body)
    assert spec["depth"] == 18 and spec["widths"] == [8, 8, 16, 16] and spec["input_size"] == [SIZE, SIZE]
    info = inspect_base(workdir / "backbone.pth")
    assert info.kind == "insightface"
    result = Trainer(config(workdir, base=str(workdir / "backbone.pth"), mode="decoder", max_steps=2)).run()
    trained = load_model(result.model_path, device="cpu")
    assert torch.equal(trained.backbone.state_dict()["conv1.weight"], body["conv1.weight"])


def test_wrong_family_and_broken_base_models_are_refused(workdir):
    torch.save({"encoder.weight": torch.zeros(3)}, workdir / "other.pth")
    with pytest.raises(ModelFileError, match="not an insightface IResNet"):
        inspect_base(workdir / "other.pth")
    (workdir / "broken.pt").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(ModelFileError, match="not a readable"):
        inspect_base(workdir / "broken.pt")
    with pytest.raises(ModelFileError, match="no checkpoint.pt"):
        inspect_base(workdir / "data")
    with pytest.raises(ModelFileError, match="not found"):
        inspect_base(workdir / "missing.pt")


def test_config_from_toml_resolves_paths_and_rejects_bad_values(tmp_path):
    (tmp_path / "run.toml").write_text('[train]\ndata = "faces"\nout = "runs/a"\nmode = "decoder"\nepochs = 3\n')
    cfg = TrainConfig.from_toml(tmp_path / "run.toml")
    assert cfg.data == str(tmp_path / "faces") and cfg.mode == "decoder" and cfg.epochs == 3
    assert TrainConfig.from_dict(__import__("tomllib").loads(cfg.to_toml())["train"]) == cfg
    (tmp_path / "bad.toml").write_text('mode = "everything"\n')
    with pytest.raises(TrainingError, match="mode must be"):
        TrainConfig.from_toml(tmp_path / "bad.toml")
    (tmp_path / "typo.toml").write_text('epocs = 3\n')
    with pytest.raises(TrainingError, match="unknown training setting"):
        TrainConfig.from_toml(tmp_path / "typo.toml")
    (tmp_path / "broken.toml").write_text('epochs = \n')
    with pytest.raises(TrainingError, match="not valid TOML"):
        TrainConfig.from_toml(tmp_path / "broken.toml")


def test_disk_space_check(tmp_path):
    assert check_disk_space(tmp_path / "new" / "run", 1) > 0
    with pytest.raises(TrainingError, match="not enough disk space"):
        check_disk_space(tmp_path, 1 << 62)


# --- the command line -------------------------------------------------------------------------------------------
def test_cli_trains_and_reports_errors(workdir, capsys):
    from xfr_desktop.cli import main

    (workdir / "run.toml").write_text('[train]\ndata = "data"\nbase = "base.pt"\nbatch_size = 4\nmode = "joint"\n')
    rc = main(["train", "--config", str(workdir / "run.toml"), "--out", str(workdir / "cli"), "--max-steps", "2",
               "--device", "cpu", "--loss", "distill"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "trained 2 steps" in out.out
    assert load_model(workdir / "cli" / "model.pt", device="cpu").spec["provenance"]["training"]["loss"] == "distill"
    rc = main(["train", "--data", str(workdir / "nowhere"), "--out", str(workdir / "x"), "--base",
               str(workdir / "base.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and "dataset folder not found" in err and "Traceback" not in err


def test_validation_from_csv_pairs_and_bin(workdir):
    import pickle

    from xfr_desktop.core.training.datasets import load_validation_pairs

    (workdir / "pairs.csv").write_text("img_a,img_b,same\n"
                                       "person_0/00.png,person_0/01.png,1\n"
                                       "person_0/00.png,person_1/00.png,0\n"
                                       "person_1/02.png,person_1/03.png,yes\n")
    pairs = load_validation_pairs(workdir / "pairs.csv", small_spec(), images_root=workdir / "data")
    assert len(pairs) == 3 and pairs.issame.tolist() == [True, False, True]
    encoded = [cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes() for img in pairs.images]
    (workdir / "val.bin").write_bytes(pickle.dumps((encoded, pairs.issame.tolist()), protocol=2))
    from_bin = load_validation_pairs(workdir / "val.bin", small_spec())
    assert np.array_equal(from_bin.images, pairs.images)
    result = Trainer(config(workdir, val=str(workdir / "pairs.csv"), val_images_root=str(workdir / "data"),
                            max_steps=1)).run()
    # best-threshold accuracy on pairs labelled same/different/same: 2 or 3 of 3 right, never fewer
    assert result.history[-1]["val_pairs"] == 3 and result.history[-1]["val_acc"] in (pytest.approx(2 / 3), 1.0)
    with pytest.raises(XfrError):
        Trainer(config(workdir, out="bad", val=str(workdir / "data" / "person_0" / "00.png"), max_steps=1)).run()


def test_trains_from_recordio_with_worker_processes(workdir):
    from tests.training.test_training_data import write_recordio

    (workdir / "rec").mkdir()
    write_recordio(workdir / "rec", [0, 0, 0, 1, 1, 1, 2, 2])
    result = Trainer(config(workdir, data=str(workdir / "rec" / "train.rec"), workers=2, batch_size=4,
                            epochs=2)).run()
    assert result.steps == 4 and not result.cancelled
    assert load_model(result.model_path, device="cpu").spec["provenance"]["training"]["n_classes"] == 3
