"""Edge export: ONNX, int8 quantization (dynamic and static), structured pruning, parity and latency.

`export_onnx` uses torch's TorchScript-based exporter (``dynamo=False``: the dynamo exporter
cannot trace this Sequential under torch 2.13 here). Quantization is onnxruntime's:
dynamic (weights int8, activations quantized on the fly) and static (activations calibrated
on training rows). Pruning is structured: hidden units with the smallest L1 weight are
removed, giving genuinely narrower layers, then the smaller network is fine-tuned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from driftline.offline.train import Dataset, accuracy, require_torch


def export_onnx(model: Any, path: Path, inputs: int) -> Path:
    torch = require_torch()
    model.eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, inputs),),
        str(path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    return path


def quantize_dynamic(src: Path, dst: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst


class _Calibration:
    def __init__(self, x: npt.NDArray[np.float32], batch: int = 64):
        self._batches = iter([{"x": x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self) -> dict[str, npt.NDArray[np.float32]] | None:
        return next(self._batches, None)


def quantize_static(src: Path, dst: Path, calibration: npt.NDArray[np.float32]) -> Path:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(
        str(src),
        str(dst),
        _Calibration(calibration),
        quant_format=QuantFormat.QDQ,  # type: ignore[arg-type]
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return dst


def session(path: Path, threads: int = 1) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def onnx_logits(path: Path, x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = session(path).run(None, {"x": x})[0]
    return out


def parity(model: Any, path: Path, x: npt.NDArray[np.float32]) -> float:
    """The largest absolute difference between the framework's and ONNX Runtime's logits."""
    torch = require_torch()
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    return float(np.max(np.abs(expected - onnx_logits(path, x))))


def onnx_accuracy(path: Path, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64]) -> float:
    return float(np.mean(onnx_logits(path, x).argmax(axis=1) == y))


def latency_ms(path: Path, batch: int, threads: int, repeats: int = 50) -> float:
    """Median milliseconds per call at `batch` rows with `threads` intra-op threads (bounded repeats)."""
    s = session(path, threads)
    x = np.random.default_rng(0).normal(size=(batch, s.get_inputs()[0].shape[1])).astype(np.float32)
    for _ in range(5):
        s.run(None, {"x": x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        s.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1000)


def prune(model: Any, data: Dataset, keep: float = 0.5, epochs: int = 3, lr: float = 0.005) -> Any:
    """Remove hidden units (smallest L1 of incoming weights) from every hidden layer, then fine-tune."""
    torch = require_torch()
    nn = torch.nn
    linears = [m for m in model if isinstance(m, nn.Linear)]
    kept: list[Any] = []
    for layer in linears[:-1]:
        k = max(1, int(layer.out_features * keep))
        kept.append(torch.argsort(layer.weight.abs().sum(dim=1), descending=True)[:k].sort().values)
    new_layers: list[Any] = []
    previous = None
    for i, layer in enumerate(linears):
        w, b = layer.weight.detach(), layer.bias.detach()
        if previous is not None:
            w = w[:, previous]
        if i < len(kept):
            w, b = w[kept[i]], b[kept[i]]
            previous = kept[i]
        small = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            small.weight.copy_(w)
            small.bias.copy_(b)
        new_layers += [small, nn.ReLU()] if i < len(linears) - 1 else [small]
    pruned = nn.Sequential(*new_layers)
    optimizer = torch.optim.Adam(pruned.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)),
        batch_size=256,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(epochs):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(pruned(xb), yb).backward()
            optimizer.step()
    pruned.eval()
    return pruned


def parameters(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


@dataclass
class Variant:
    name: str
    path: Path
    accuracy: float
    size_bytes: int
    parity: float | None  # max |logit difference| vs the framework (fp32 exports only)
    latency: dict[str, float]  # "batch=1,threads=1" -> ms


def edge_variants(model: Any, data: Dataset, out: Path, threads: tuple[int, ...] = (1, 2)) -> list[Variant]:
    """fp32, int8 dynamic, int8 static and pruned fp32 ONNX files, each measured the same way."""
    n = data.x_train.shape[1]
    fp32 = export_onnx(model, out / "model-fp32.onnx", n)
    pruned_model = prune(model, data)
    files = {
        "onnx fp32": (fp32, model),
        "onnx int8 dynamic": (quantize_dynamic(fp32, out / "model-int8-dynamic.onnx"), None),
        "onnx int8 static": (quantize_static(fp32, out / "model-int8-static.onnx", data.x_train[:2048]), None),
        "onnx fp32, pruned to half width": (export_onnx(pruned_model, out / "model-pruned.onnx", n), pruned_model),
    }
    variants = []
    for name, (path, framework) in files.items():
        lat = {f"batch={b},threads={t}": latency_ms(path, b, t) for b in (1, 1024) for t in threads}
        variants.append(
            Variant(
                name,
                path,
                onnx_accuracy(path, data.x_test, data.y_test),
                path.stat().st_size,
                parity(framework, path, data.x_test[:2048]) if framework is not None else None,
                lat,
            )
        )
    torch_lat = {}
    torch = require_torch()
    for b in (1, 1024):
        x = torch.from_numpy(data.x_test[:b].copy() if b <= len(data.x_test) else data.x_test[:1].repeat(b, 0))
        with torch.no_grad():
            for _ in range(5):
                model(x)
            times = []
            for _ in range(50):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
        torch_lat[f"batch={b},threads=torch"] = float(np.median(times) * 1000)
    variants.insert(
        0,
        Variant(
            "torch fp32 (framework)",
            Path(""),
            accuracy(model, data.x_test, data.y_test),
            parameters(model) * 4,
            None,
            torch_lat,
        ),
    )
    return variants
