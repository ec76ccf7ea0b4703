"""Import of official-code checkpoints, checked against a plain-tensor reference of the official forward.

The reference functions below are written from ../shared/notes/official-code.md with plain tensor
ops on the official state dict (no module of ours), so a transcription error in fusion/attention.py
or a wrong name mapping in fusion/official.py makes these tests fail.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from fusion.attention import RecursiveJointCrossModalAttention
from fusion.model import RJCMA
from fusion.official import OfficialImportError, load_official_state_dict
from pipeline.core.params import FusionParams

DIMS = {"video": 16, "audio": 8, "text": 8}  # official order: video, audio, text
WINDOW = 300
STEPS = 2


def uniform(g, *shape, fan_in):
    """Like torch's Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return (torch.rand(*shape, generator=g) * 2 - 1) * bound


def official_attention_state(dims=DIMS, window=WINDOW, steps=STEPS, seed=0):
    """A random state dict with the official DCNLayer names and shapes."""
    g = torch.Generator().manual_seed(seed)
    d = sum(dims.values())
    sd = {}
    for s in range(steps):
        p = f"dcn_layers.{s}."
        sd[p + "dense_coattn.query_linear.weight"] = uniform(g, d, d, fan_in=d)
        sd[p + "dense_coattn.query_linear.bias"] = uniform(g, d, fan_in=d)
        for i, d_m in enumerate(dims.values(), start=1):
            sd[p + f"dense_coattn.key{i}_linear.weight"] = uniform(g, window, window, fan_in=window)
            sd[p + f"dense_coattn.key{i}_linear.bias"] = uniform(g, window, fan_in=window)
            sd[p + f"dense_coattn.value{i}_linear.weight"] = uniform(g, d_m, d_m, fan_in=d_m)
            sd[p + f"dense_coattn.value{i}_linear.bias"] = uniform(g, d_m, fan_in=d_m)
            sd[p + f"linears.{i - 1}.0.weight"] = uniform(g, d_m, d, fan_in=d)
            sd[p + f"linears.{i - 1}.0.bias"] = uniform(g, d_m, fan_in=d)
    return sd


def reference_attention(sd, video, audio, text, steps=STEPS, prefix=""):
    """The official recursive joint cross-attention, eval mode (dropout = identity), plain ops."""
    feats = [video, audio, text]
    for s in range(steps):
        p = f"{prefix}dcn_layers.{s}."
        joint = torch.cat(feats, dim=-1)  # [B, K, d]
        d = joint.shape[-1]
        new = []
        for i, x in enumerate(feats, start=1):
            wk, bk = sd[p + f"dense_coattn.key{i}_linear.weight"], sd[p + f"dense_coattn.key{i}_linear.bias"]
            wv, bv = (
                sd[p + f"dense_coattn.value{i}_linear.weight"],
                sd[p + f"dense_coattn.value{i}_linear.bias"],
            )
            wl, bl = sd[p + f"linears.{i - 1}.0.weight"], sd[p + f"linears.{i - 1}.0.bias"]
            key = torch.matmul(x.transpose(1, 2), wk.t()) + bk  # [B, d_m, K]
            scores = torch.tanh(torch.bmm(key, joint) / math.sqrt(d))  # [B, d_m, d]
            value = torch.matmul(x, wv.t()) + bv  # [B, K, d_m]
            weighted = torch.relu(torch.tanh(torch.bmm(value, scores)))  # [B, K, d]
            new.append(x + torch.relu(torch.matmul(weighted, wl.t()) + bl))
        feats = new
    return feats


def features(batch=3, dims=DIMS, window=WINDOW, seed=1):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(batch, window, d, generator=g) for m, d in dims.items()}


def test_attention_import_matches_official_computation():
    sd = official_attention_state()
    module = RecursiveJointCrossModalAttention(
        dims=DIMS, window=WINDOW, recursions=STEPS, variant="official", dropout=0.6
    )
    ignored = load_official_state_dict(module, sd)
    assert sorted(ignored) == sorted(k for k in sd if "query_linear" in k)
    module.eval()
    x = features()
    out = module(x)
    assert list(out) == ["video", "audio", "text"]
    expected = reference_attention(sd, x["video"], x["audio"], x["text"])
    for name, ref in zip(["video", "audio", "text"], expected):
        assert out[name].shape == ref.shape
        assert (out[name] - ref).abs().max().item() < 1e-5
        assert (ref - x[name]).abs().max().item() > 1e-2  # the residual branch is not trivially zero
    # train mode applies dropout (p = 0.6), so outputs change
    module.train()
    torch.manual_seed(0)
    assert not torch.allclose(module(x)["audio"], out["audio"])


def test_attention_import_into_another_modality_order():
    """Our models concatenate audio, visual, text; the residual Linear's input columns are reordered."""
    sd = official_attention_state(seed=3)
    module = RecursiveJointCrossModalAttention(
        dims={"audio": 8, "visual": 16, "text": 8},
        window=WINDOW,
        recursions=STEPS,
        variant="official",
        dropout=0.6,
    ).eval()
    load_official_state_dict(module, {"coattn." + k: v for k, v in sd.items()})  # prefix accepted
    x = features(seed=4)
    out = module({"visual": x["video"], "audio": x["audio"], "text": x["text"]})
    expected = reference_attention(sd, x["video"], x["audio"], x["text"])
    for name, ref in zip(["visual", "audio", "text"], expected):
        assert (out[name] - ref).abs().max().item() < 1e-5


def test_attention_import_errors_name_the_problem():
    sd = official_attention_state()

    def fresh(**kw):
        args = dict(dims=DIMS, window=WINDOW, recursions=STEPS, variant="official", dropout=0.6)
        return RecursiveJointCrossModalAttention(**{**args, **kw})

    missing = dict(sd)
    del missing["dcn_layers.1.dense_coattn.value2_linear.bias"]
    with pytest.raises(OfficialImportError, match=r"missing.*steps\.1\.value\.audio\.bias"):
        load_official_state_dict(fresh(), missing)
    with pytest.raises(OfficialImportError, match=r"unexpected.*dcn_layers\.0\.extra"):
        load_official_state_dict(fresh(), {**sd, "dcn_layers.0.extra.weight": torch.zeros(1)})
    with pytest.raises(
        OfficialImportError, match=r"shape mismatch.*steps\.0\.key\.visual\.weight.*fusion\.window"
    ):
        load_official_state_dict(fresh(window=200), sd)
    with pytest.raises(OfficialImportError, match="unexpected.*steps.1"):
        load_official_state_dict(fresh(recursions=1), sd)
    with pytest.raises(OfficialImportError, match="unexpected.*steps.1"):
        load_official_state_dict(fresh(shared_weights=True), sd)
    with pytest.raises(OfficialImportError, match="variant='official'"):
        load_official_state_dict(fresh(variant="paper"), sd)
    with pytest.raises(OfficialImportError, match="video, audio and text"):
        load_official_state_dict(fresh(dims={"video": 16, "audio": 8}), sd)
    # a failed import leaves the module untouched
    module = fresh()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(OfficialImportError):
        load_official_state_dict(module, missing)
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())


# ---------------------------------------------------------------------------------------------
# Full model: official TCN (old-style weight_norm names) + BatchNorm + attention + head

TCN_NAMES = {"video": "visual", "logmel": "audio", "bert": "text"}
INPUT_DIMS = {"video": 12, "logmel": 10, "bert": 14}
CHANNELS = {"video": (20, 16), "logmel": (8, 8), "bert": (6, 8)}  # ends at 16/8/8 = DIMS
KERNEL = 5
K_SMALL = 40


def official_model_state(seed=0, new_style_names=False):
    g = torch.Generator().manual_seed(seed)
    sd = {"spatial.visual.body.0.weight": torch.zeros(2, 2)}  # a backbone weight: ignored
    for tm, chans in CHANNELS.items():
        c_in = INPUT_DIMS[tm]
        for level, c_out in enumerate(chans):
            p = f"temporal.{tm}.network.{level}."
            for conv, n_in in (("conv1", c_in), ("conv2", c_out)):
                v = uniform(g, c_out, n_in, KERNEL, fan_in=n_in * KERNEL)
                gain = 0.5 + torch.rand(c_out, 1, 1, generator=g)
                bias = uniform(g, c_out, fan_in=n_in * KERNEL)
                if new_style_names:
                    names = ("parametrizations.weight.original0", "parametrizations.weight.original1")
                else:
                    names = ("weight_g", "weight_v")
                alias = {"conv1": "net.0", "conv2": "net.4"}[conv]
                for owner in (conv, alias):  # the official block registers each conv twice
                    sd[p + f"{owner}.{names[0]}"] = gain
                    sd[p + f"{owner}.{names[1]}"] = v
                    sd[p + f"{owner}.bias"] = bias
            if c_in != c_out:
                sd[p + "downsample.weight"] = uniform(g, c_out, c_in, 1, fan_in=c_in)
                sd[p + "downsample.bias"] = uniform(g, c_out, fan_in=c_in)
            c_in = c_out
        c = chans[-1]
        sd.update(bn_state(g, f"bn.{tm}.", c))
    sd.update({"coattn." + k: v for k, v in official_attention_state(window=K_SMALL, seed=seed + 1).items()})
    d = sum(DIMS.values())
    sd["regressor1.weight"] = uniform(g, d // 2, d, fan_in=d)
    sd["regressor1.bias"] = uniform(g, d // 2, fan_in=d)
    sd.update(bn_state(g, "bn1.", d // 2))
    sd["regressor2.weight"] = uniform(g, 1, d // 2, fan_in=d // 2)
    sd["regressor2.bias"] = uniform(g, 1, fan_in=d // 2)
    return sd


def bn_state(g, p, c):
    return {
        p + "weight": 0.5 + torch.rand(c, generator=g),
        p + "bias": 0.1 * torch.randn(c, generator=g),
        p + "running_mean": 0.1 * torch.randn(c, generator=g),
        p + "running_var": 0.5 + torch.rand(c, generator=g),
        p + "num_batches_tracked": torch.tensor(17),
    }


def reference_bn(sd, p, x):
    """Eval-mode BatchNorm1d over dim 1 of ``[B, C, K]``."""
    rm, rv = sd[p + "running_mean"][:, None], sd[p + "running_var"][:, None]
    return (x - rm) / torch.sqrt(rv + 1e-5) * sd[p + "weight"][:, None] + sd[p + "bias"][:, None]


def reference_tcn(sd, tm, x):
    """Official TemporalConvNet, eval mode: symmetric padding then chomp, weight = g * v / ||v||."""
    for level in range(len(CHANNELS[tm])):
        p = f"temporal.{tm}.network.{level}."
        dilation = 2**level
        pad = (KERNEL - 1) * dilation

        def conv(y, name, p=p, dilation=dilation, pad=pad):
            gain, v = sd[p + f"{name}.weight_g"], sd[p + f"{name}.weight_v"]
            w = gain * v / v.norm(dim=(1, 2), keepdim=True)
            return F.conv1d(y, w, sd[p + f"{name}.bias"], padding=pad, dilation=dilation)[:, :, :-pad]

        h = F.leaky_relu(conv(F.leaky_relu(conv(x, "conv1")), "conv2"))
        res = (
            F.conv1d(x, sd[p + "downsample.weight"], sd[p + "downsample.bias"])
            if p + "downsample.weight" in sd
            else x
        )
        x = F.leaky_relu(h + res)
    return x


def reference_model(sd, inputs):
    x = {}
    for tm in ("video", "logmel", "bert"):
        y = reference_tcn(sd, tm, inputs[tm].transpose(1, 2))
        x[tm] = reference_bn(sd, f"bn.{tm}.", y).transpose(1, 2)
    v, a, t = reference_attention(sd, x["video"], x["logmel"], x["bert"], prefix="coattn.")
    c = torch.cat((v, a, t), dim=-1) @ sd["regressor1.weight"].t() + sd["regressor1.bias"]
    c = reference_bn(sd, "bn1.", c.transpose(1, 2)).transpose(1, 2)
    c = F.leaky_relu(c) @ sd["regressor2.weight"].t() + sd["regressor2.bias"]
    return torch.tanh(c)


def our_model(**kw):
    fusion = FusionParams(
        modalities=("audio", "visual", "text"),
        variant="official",
        recursions=STEPS,
        window=K_SMALL,
        tcn_channels={TCN_NAMES[tm]: c for tm, c in CHANNELS.items()},
        tcn_kernel=KERNEL,
        **kw,
    )
    return RJCMA(fusion, {TCN_NAMES[tm]: d for tm, d in INPUT_DIMS.items()}, n_outputs=1)


@pytest.mark.parametrize("new_style_names", [False, True])
def test_full_model_import_matches_official_computation(new_style_names):
    sd = official_model_state(new_style_names=new_style_names)
    model = our_model()
    ignored = load_official_state_dict(model, {"module." + k: v for k, v in sd.items()})
    assert "spatial.visual.body.0.weight" in ignored
    assert any(".net.0." in k for k in ignored) and any("query_linear" in k for k in ignored)
    model.eval()
    g = torch.Generator().manual_seed(5)
    inputs = {tm: torch.randn(2, K_SMALL, d, generator=g) for tm, d in INPUT_DIMS.items()}
    ours = model({TCN_NAMES[tm]: x for tm, x in inputs.items()})
    reference_sd = official_model_state(new_style_names=False)  # the reference reads weight_g / weight_v
    expected = reference_model(reference_sd, inputs)
    assert ours.shape == expected.shape == (2, K_SMALL, 1)
    assert (ours - expected).abs().max().item() < 1e-5
    assert expected.std().item() > 1e-2


def test_full_model_import_errors():
    sd = official_model_state()
    with pytest.raises(OfficialImportError, match=r"missing.*tcn\.text\.norm\.running_var"):
        load_official_state_dict(our_model(), {k: v for k, v in sd.items() if k != "bn.bert.running_var"})
    with pytest.raises(OfficialImportError, match=r"unexpected.*temporal\.mfcc"):
        load_official_state_dict(our_model(), {**sd, "temporal.mfcc.network.0.conv1.bias": torch.zeros(3)})
    with pytest.raises(OfficialImportError, match=r"shape mismatch.*head\.fc1\.weight"):
        load_official_state_dict(our_model(head_hidden=5), sd)
    bad = dict(sd)
    bad["temporal.bert.network.0.net.0.bias"] = sd["temporal.bert.network.0.net.0.bias"] + 1
    with pytest.raises(OfficialImportError, match="differs from the tensor it duplicates"):
        load_official_state_dict(our_model(), bad)
    with pytest.raises(OfficialImportError, match="not Linear"):
        load_official_state_dict(torch.nn.Linear(2, 2), sd)
