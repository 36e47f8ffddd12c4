"""GPU check of Algorithm 1 (run on a CUDA machine): CPU/GPU agreement, error vs a float64 literal reference,
host synchronisations inside the fast engine and a whole pair, where a pair's time goes (stages; both faces as one
batch vs face by face), the bundled model on the sample case, and timings.  python3 benchmarks/gpu_check_explain.py  (writes
$OUT/gpu_explain.json or ./gpu_explain.json). Figures measured on an H200: benchmarks/results/gpu_check_h200.json."""
import json, os, sys, time, warnings, copy
sys.path.insert(0, os.getcwd())
import numpy as np, torch
from xfr_desktop.core.model import JointModel, default_spec
from xfr_desktop.core.explain import explain_pair
from xfr_desktop.core.algorithm1_engines import compute_residuals, compute_residuals_pair
out = {"torch": torch.__version__, "cuda": torch.cuda.get_device_name(0)}
torch.manual_seed(0)
m = JointModel(default_spec(depth=50)).eval()
for mod in m.modules():
    if isinstance(mod, torch.nn.BatchNorm2d):
        mod.running_mean.uniform_(-0.1, 0.1); mod.running_var.uniform_(0.5, 1.5)
m.backbone.bn2.bias.data.fill_(2.0)
rng = np.random.default_rng(0)
a = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8); b = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
torch.backends.cudnn.allow_tf32 = False; torch.backends.cuda.matmul.allow_tf32 = False
cpu = explain_pair(m, a, b, engine="fast")
mc = copy.deepcopy(m).cuda()
gpu = explain_pair(mc, a, b, engine="fast")
lit = explain_pair(copy.deepcopy(m).double().cuda(), a, b, engine="literal")
def rel(x, y): return float(np.abs(x - y).max() / np.abs(y).max())
out["score_cpu_gpu_absdiff"] = abs(cpu.score - gpu.score)
out["H_rel_err_gpu_vs_cpu"] = max(rel(gpu.a.H, cpu.a.H), rel(gpu.b.H, cpu.b.H))
out["H_rel_err_gpu_fast_vs_float64_literal"] = max(rel(gpu.a.H, lit.a.H), rel(gpu.b.H, lit.b.H))
out["sumH_minus_margin"] = float(gpu.a.H.sum() - (gpu.score - gpu.threshold))
out["device_reported"] = gpu.device
# host syncs inside the residual engine
with torch.no_grad():
    C, F = mc.embed(mc.preprocess(np.stack([a, b])))
    C1 = C[:1].contiguous()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        compute_residuals(mc.decoder, C1, engine="fast")
    torch.cuda.set_sync_debug_mode(0)
    out["host_syncs_in_fast_engine_512_channels"] = len(w)
    out["sync_sites"] = sorted({str(x.message)[:80] for x in w})[:5]
    def tm(fn, r=10):
        fn(); torch.cuda.synchronize(); ts = []
        for _ in range(r):
            t = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
        return float(np.median(ts) * 1e3)
    out["gpu_fast_per_image_ms"] = tm(lambda: compute_residuals(mc.decoder, C1, engine="fast"))
    out["gpu_batched_per_image_ms"] = tm(lambda: compute_residuals(mc.decoder, C1, engine="batched", chunk=512), 5)
    out["gpu_literal_per_image_ms"] = tm(lambda: compute_residuals(mc.decoder, C1, engine="literal"), 2)
    out["gpu_explain_pair_ms"] = tm(lambda: explain_pair(mc, a, b), 5)
    out["gpu_backbone_pair_ms"] = tm(lambda: mc.embed(mc.preprocess(np.stack([a, b]))))
    # where a pair's time goes, and the two ways of running its residuals (both faces as one batch or one by one)
    stages = [explain_pair(mc, a, b).timings_ms for _ in range(5)]
    out["gpu_explain_pair_stages_ms"] = {k: float(np.median([s[k] for s in stages])) for k in stages[0]}
    C2 = mc.embed(mc.preprocess(np.stack([a, b])))[0]
    out["gpu_residuals_pair_one_batch_ms"] = tm(lambda: compute_residuals_pair(mc.decoder, C2, one_batch=True))
    out["gpu_residuals_pair_face_by_face_ms"] = tm(lambda: compute_residuals_pair(mc.decoder, C2, one_batch=False))
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        explain_pair(mc, a, b)
    torch.cuda.set_sync_debug_mode(0)
    out["host_syncs_in_explain_pair"] = len(w)
# the bundled model (dlib ResNet, 150 px, 256 channels) on the sample case, when this checkout has it
from xfr_desktop.core.model import default_model_path, load_model
if default_model_path().is_file():
    import json as _json
    from xfr_desktop.core.alignment import FaceAligner
    bm = load_model(None, device="cuda")
    al = FaceAligner.for_model(bm)
    pair = _json.load(open("resources/samples/case.json"))["pairs"][0]
    fa, fb = (al.align_file("resources/samples/" + pair[k]).aligned for k in ("image_a", "image_b"))
    with torch.no_grad():
        out["gpu_bundled_model_explain_pair_ms"] = tm(lambda: explain_pair(bm, fa, fb), 10)
        runs = [explain_pair(bm, fa, fb).timings_ms for _ in range(5)]
    out["gpu_bundled_model_stages_ms"] = {k: float(np.median([s[k] for s in runs])) for k in runs[0]}
    cpu_ref = explain_pair(load_model(None, device="cpu"), fa, fb)
    gpu_res = explain_pair(bm, fa, fb)
    out["gpu_bundled_model_H_rel_err_vs_cpu"] = max(rel(gpu_res.a.H, cpu_ref.a.H), rel(gpu_res.b.H, cpu_ref.b.H))
print(json.dumps(out, indent=1))
json.dump(out, open(os.path.join(os.environ.get("OUT", "."), "gpu_explain.json"), "w"), indent=1)
