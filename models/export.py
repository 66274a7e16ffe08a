#!/usr/bin/env python3
"""Export self-describing TorchScript feature extractors for imgsearch.

imgsearch loads a TorchScript module that maps a float32 NCHW RGB batch
(normalised with mean/std, center-cropped to input_size) to an [N, D]
float32 embedding.  The embedding is NOT L2-normalised here; the C++ side
does that.  Every file written by this script carries a small JSON document
(extra file "imgsearch.json" inside the TorchScript zip archive) that tells
imgsearch how to preprocess images and what dimension to expect.

Sub-commands:

  resnet50 | vgg16 | vgg16-gap | mobilenet_v2
      Build a torchvision model, cut it down to a feature extractor, trace
      and save it. The traced module keeps its weights as parameters (it is
      not frozen) so that imgsearch can convert it to bf16 before freezing.
  import
      Make an existing TorchScript file self-describing by adding metadata.
  info
      Print the metadata embedded in a file.

Run with an interpreter that can import torch and torchvision, e.g. Debian's
/usr/bin/python3 with python3-torch and python3-torchvision installed.
See models/README.md for details.
"""

import argparse
import json
import os
import re
import socket
import sys
import time
import zipfile

PROG = "export.py"
META_NAME = "imgsearch.json"
META_FORMAT = "imgsearch-model"
META_VERSION = 1
EXPORTED_BY = "imgsearch models/export.py"

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# name -> (torchvision constructor, weights enum class, output dim, description)
ARCHS = {
    "resnet50": ("resnet50", "ResNet50_Weights", 2048,
                 "ResNet-50, 2048-d: global average pool output (flattened), "
                 "i.e. everything before fc"),
    "vgg16": ("vgg16", "VGG16_Weights", 4096,
              "VGG-16, 4096-d fc7: features -> avgpool -> flatten -> "
              "classifier[0..4] (fc6, ReLU, Dropout, fc7, ReLU)"),
    "vgg16-gap": ("vgg16", "VGG16_Weights", 512,
                  "VGG-16, 512-d: global average pool of the last conv block "
                  "output (conv5_3 + ReLU + final 2x2 max-pool, i.e. the "
                  "output of vgg.features, 7x7 for a 224 input)"),
    "mobilenet_v2": ("mobilenet_v2", "MobileNet_V2_Weights", 1280,
                     "MobileNetV2, 1280-d: features -> adaptive avg pool -> "
                     "flatten (before the classifier)"),
}


class ExportError(Exception):
    """A user-facing error: printed as one message, no traceback."""


def short_error(e, limit=300):
    """One line describing exception E (TorchScript errors put the real
    cause on their last line)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    text = lines[-1] if "TorchScript interpreter" in lines[0] else lines[0]
    return text if len(text) <= limit else text[:limit] + "..."


def warn(msg):
    print(f"{PROG}: warning: {msg}", file=sys.stderr)


def note(msg):
    print(f"{PROG}: {msg}", file=sys.stderr)


def import_torch():
    try:
        import torch
        import torchvision
    except ImportError as e:
        raise ExportError(
            f"cannot import torch/torchvision with {sys.executable} ({e}); "
            "run this script with a Python that has PyTorch and torchvision, "
            "e.g. /usr/bin/python3 on Debian with python3-torch and "
            "python3-torchvision installed")
    return torch, torchvision


# ----------------------------------------------------------------------------
# Metadata helpers


def metadata_json(meta):
    """JSON text, one key per line (lists stay on one line)."""
    lines = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in meta.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def make_metadata(torch, name, weights, output_dim, input_size, resize,
                  mean, std, quantization=None):
    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "name": name,
        "weights": weights,
        "output_dim": int(output_dim),
        "input_size": int(input_size),
        "resize": int(resize),
        "interpolation": "bilinear-antialias",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "color": "RGB",
        "pixel_scale": 255.0,
        "torch_version": str(torch.__version__),
        "exported_by": EXPORTED_BY,
    }
    if quantization:
        # imgsearch reads "quantized" to pick int8 inference (--precision auto).
        meta.update(quantization)
    return meta


_EXTRA_RE = re.compile(r"^[^/]+/extra/(.+)$")


def read_extra_files(path):
    """Return {name: bytes} of the extra files in a TorchScript archive.

    Reads the zip directly, so no code from the file is run."""
    try:
        with zipfile.ZipFile(path) as z:
            out = {}
            for info in z.infolist():
                m = _EXTRA_RE.match(info.filename)
                if m and not info.is_dir():
                    out[m.group(1)] = z.read(info)
            return out
    except FileNotFoundError:
        raise ExportError(f"{path}: no such file")
    except IsADirectoryError:
        raise ExportError(f"{path}: is a directory")
    except zipfile.BadZipFile:
        raise ExportError(f"{path}: not a TorchScript file "
                          "(not a zip archive)")
    except OSError as e:
        raise ExportError(f"{path}: cannot read: {e.strerror or e}")


def save_atomic(torch, module, path, extra_files):
    """torch.jit.save to PATH.tmp, then rename over PATH."""
    parent = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot create directory {parent}: "
                          f"{e.strerror or e}")
    tmp = path + ".tmp"
    try:
        torch.jit.save(module, tmp, _extra_files=extra_files)
        os.replace(tmp, path)
    except Exception as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ExportError(f"cannot write {path}: {short_error(e)}")


def output_summary(path, meta, seconds):
    size_mb = os.path.getsize(path) / 1e6
    print(f"wrote {path}: {meta['name']}, {meta['output_dim']}-d, "
          f"weights={meta['weights']}, {size_mb:.1f} MB, {seconds:.1f} s")


# ----------------------------------------------------------------------------
# Architecture export


def load_state_dict_file(torch, path):
    if not os.path.exists(path):
        raise ExportError(
            f"weights file {path} does not exist (--weights takes "
            "'imagenet', 'random' or the path of a torchvision state_dict "
            ".pth file)")
    if os.path.isdir(path):
        raise ExportError(f"weights file {path} is a directory")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            names = []
        if any(re.match(r"^[^/]+/(code/|constants\.pkl$)", n) for n in names):
            raise ExportError(
                f"{path} is a TorchScript model, not a state_dict; make it "
                f"self-describing with '{PROG} import' instead")
    try:
        try:
            # weights_only: refuse to unpickle arbitrary Python objects.
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:  # torch too old for weights_only
            obj = torch.load(path, map_location="cpu")
    except Exception as e:
        msg = str(e).strip().splitlines()
        msg = msg[0] if msg else type(e).__name__
        if msg.startswith("Weights only load failed"):
            msg = ("not a plain state_dict of tensors (either not a "
                   "torch.save file at all, or it pickles Python objects "
                   "such as a whole model, which are not loaded for safety)")
        elif len(msg) > 200:
            msg = msg[:200] + "..."
        raise ExportError(
            f"cannot load weights file {path}: {msg}; expected a torchvision "
            "state_dict .pth file (torch.save(model.state_dict(), ...))")
    # Common checkpoint wrappers.
    if isinstance(obj, dict):
        for key in ("state_dict", "model"):
            if key in obj and isinstance(obj[key], dict) and not \
                    torch.is_tensor(obj[key]):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise ExportError(
            f"{path} is not a state_dict (a mapping of parameter names to "
            "tensors)")
    return obj


def apply_state_dict(model, state, path, arch):
    want = set(model.state_dict().keys())
    have = set(state.keys())
    missing = sorted(want - have)
    unexpected = sorted(have - want)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. "
                         f"{', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. "
                         f"{', '.join(unexpected[:3])})")
        hint = ""
        if any(k.startswith("module.") for k in have):
            hint = ("; keys start with 'module.' (a DataParallel checkpoint): "
                    "strip that prefix first")
        raise ExportError(
            f"weights file {path} does not match torchvision "
            f"{ARCHS[arch][0]}: {'; '.join(parts)} keys{hint}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        detail = lines[1] if len(lines) > 1 else (lines[0] if lines else "")
        raise ExportError(
            f"weights file {path} does not match torchvision "
            f"{ARCHS[arch][0]}: {detail}")


def build_model(torch, torchvision, arch, weights_arg):
    ctor_name, enum_name, _, _ = ARCHS[arch]
    ctor = getattr(torchvision.models, ctor_name)
    if weights_arg == "imagenet":
        enum = getattr(torchvision.models, enum_name).IMAGENET1K_V1
        url = enum.url
        fname = url.rsplit("/", 1)[-1]
        # No default socket timeout in urllib: a firewalled network would
        # hang forever instead of failing.
        old_timeout = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)
        try:
            model = ctor(weights=enum, progress=False)
        except Exception as e:
            reason = str(e).strip().splitlines()
            reason = reason[0] if reason else type(e).__name__
            cache = os.path.join(torch.hub.get_dir(), "checkpoints")
            raise ExportError(
                f"could not download the ImageNet weights for {arch} from "
                f"{url} ({reason}); this needs network access.\n"
                f"  Offline: download {fname} on a machine with network and "
                f"pass --weights /path/to/{fname} (or copy it into {cache}/), "
                f"or use '{PROG} import' with another TorchScript model.")
        finally:
            socket.setdefaulttimeout(old_timeout)
        return model, "imagenet"
    if weights_arg == "random":
        warn(f"--weights random: {arch} is randomly initialised; "
             "its embeddings are meaningless. Use it for tests and speed "
             "benchmarks ONLY, never for real search.")
        return ctor(weights=None), "random"
    state = load_state_dict_file(torch, weights_arg)
    model = ctor(weights=None)
    apply_state_dict(model, state, weights_arg, arch)
    return model, "file:" + os.path.basename(weights_arg)


def make_extractor(torch, arch, model):
    nn = torch.nn
    if arch == "resnet50":
        model.fc = nn.Identity()
    elif arch == "vgg16":
        # classifier = [fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8]
        model.classifier = model.classifier[:5]
    elif arch == "vgg16-gap":
        model = nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1),
                              nn.Flatten(1))
    elif arch == "mobilenet_v2":
        model.classifier = nn.Identity()
    else:
        raise AssertionError(arch)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def check_close(torch, ref, out, what):
    if out.shape != ref.shape:
        raise ExportError(f"{what}: output shape {tuple(out.shape)} != "
                          f"eager {tuple(ref.shape)}")
    if not torch.isfinite(out).all():
        raise ExportError(f"{what}: output contains NaN/Inf")
    scale = ref.abs().max().item()
    err = (out - ref).abs().max().item()
    # Freezing folds batch norms into convolutions, which changes rounding.
    tol = 1e-4 * max(scale, 1e-6) + 1e-6
    if err > tol:
        raise ExportError(f"{what}: output differs from eager model "
                          f"(max abs diff {err:.3g}, max abs value "
                          f"{scale:.3g})")
    return err, scale



# ----------------------------------------------------------------------------
# int8 post-training quantisation

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff",
                    ".ppm", ".pgm", ".gif")
QUANT_ENGINE = "onednn"


def calibration_files(directory, count):
    """COUNT image paths spread evenly over the sorted recursive listing of
    DIRECTORY: deterministic, and it covers every sub-folder (class) of a
    sorted collection rather than the first few."""
    if not os.path.isdir(directory):
        raise ExportError(f"--calibrate {directory}: not a directory")
    files = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for n in sorted(names):
            if n.lower().endswith(IMAGE_EXTENSIONS):
                files.append(os.path.join(root, n))
    if not files:
        raise ExportError(f"--calibrate {directory}: no images found "
                          f"(extensions: {' '.join(IMAGE_EXTENSIONS)})")
    if len(files) <= count:
        return files
    step = len(files) / count
    return [files[int(i * step)] for i in range(count)]


def load_calibration_batch(torch, paths, size, resize, mean, std):
    """The model's own preprocessing (docs/design.md): RGB, shorter side to
    RESIZE with antialiased bilinear, centre crop SIZE, /255, mean/std."""
    try:
        from PIL import Image
    except ImportError:
        raise ExportError("--calibrate needs PIL (python3-pil) to read images")
    tensors, skipped = [], 0
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    for path in paths:
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
                w, h = im.size
                scale = resize / min(w, h)
                nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
                im = im.resize((nw, nh), Image.BILINEAR, reducing_gap=None)
                left, top = (nw - size) // 2, (nh - size) // 2
                im = im.crop((left, top, left + size, top + size))
                data = torch.frombuffer(bytearray(im.tobytes()),
                                        dtype=torch.uint8)
        except Exception as e:  # one bad image never aborts the export
            warn(f"{path}: skipped for calibration ({short_error(e)})")
            skipped += 1
            continue
        x = data.view(size, size, 3).permute(2, 0, 1).float() / 255.0
        tensors.append((x - m) / s)
    if not tensors:
        raise ExportError("no calibration image could be read")
    return torch.stack(tensors), skipped


def quantize_int8(torch, model, example, batch, arch):
    """FX static post-training quantisation for oneDNN: per-channel int8
    weights, uint8 activations observed (histogram) on BATCH."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, convert_fx
    if QUANT_ENGINE not in torch.backends.quantized.supported_engines:
        raise ExportError(
            f"this torch has no '{QUANT_ENGINE}' quantized engine (it has "
            f"{', '.join(torch.backends.quantized.supported_engines)}); "
            "imgsearch runs int8 models with oneDNN")
    torch.backends.quantized.engine = QUANT_ENGINE
    try:
        prepared = prepare_fx(model, get_default_qconfig_mapping(QUANT_ENGINE),
                              example_inputs=(example,))
        with torch.no_grad():
            for chunk in batch.split(16):
                prepared(chunk)
        return convert_fx(prepared)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"quantising {arch} failed: {short_error(e)}")


def cmd_export(args):
    t0 = time.monotonic()
    torch, torchvision = import_torch()
    arch = args.arch
    dim = ARCHS[arch][2]
    size = args.input_size
    resize = args.resize if args.resize is not None else \
        default_resize(size)
    if args.batch_example < 1:
        raise ExportError("--batch-example must be >= 1")
    check_sizes(size, resize)
    mean = args.mean if args.mean is not None else IMAGENET_MEAN
    std = args.std if args.std is not None else IMAGENET_STD
    if any(v <= 0 for v in std):
        raise ExportError("--std values must be positive")
    if args.quantize == "int8" and not args.calibrate:
        raise ExportError("--quantize int8 needs --calibrate DIR: a folder of "
                          "your own images to measure activation ranges on")
    if args.calibrate and args.quantize != "int8":
        raise ExportError("--calibrate is only used with --quantize int8")
    if args.calibrate_count < 1:
        raise ExportError("--calibrate-count must be >= 1")
    calibration = None
    if args.quantize == "int8":
        paths = calibration_files(args.calibrate, args.calibrate_count)
        calibration, skipped = load_calibration_batch(
            torch, paths, size, resize, mean, std)

    torch.manual_seed(args.seed)
    model, weights_tag = build_model(torch, torchvision, arch, args.weights)
    model = make_extractor(torch, arch, model)

    gen = torch.Generator().manual_seed(args.seed)
    example = torch.randn(args.batch_example, 3, size, size, generator=gen)
    check_batches = [2] if args.batch_example != 2 else [2, 3]
    quantization = None
    if calibration is not None:
        return export_int8(torch, args, model, example, calibration, skipped,
                           dim, size, resize, mean, std, weights_tag, t0)
    with torch.no_grad():
        try:
            traced = torch.jit.trace(model, example, check_trace=False)
            # Not frozen: freezing turns weights into constants, which
            # imgsearch could no longer convert to bf16. It freezes after
            # loading, in C++.
            module = traced.eval()
        except Exception as e:
            raise ExportError(f"tracing {arch} failed: "
                              f"{short_error(e)}")
        for n in check_batches:
            x = torch.randn(n, 3, size, size, generator=gen)
            ref = model(x)
            out = module(x)
            if ref.dim() != 2 or ref.shape[1] != dim:
                raise ExportError(f"{arch}: eager output shape "
                                  f"{tuple(ref.shape)}, expected [{n}, {dim}]")
            check_close(torch, ref, out, f"{arch} batch {n}")

    meta = make_metadata(torch, args.name or arch, weights_tag, dim, size,
                         resize, mean, std, quantization)
    save_atomic(torch, module, args.output,
                {META_NAME: metadata_json(meta)})
    output_summary(args.output, meta, time.monotonic() - t0)
    return 0


def export_int8(torch, args, model, example, calibration, skipped, dim,
                size, resize, mean, std, weights_tag, t0):
    arch = args.arch
    n_cal = calibration.shape[0]
    note(f"calibrating {arch} int8 ({QUANT_ENGINE}) on {n_cal} images from "
         f"{args.calibrate}" + (f" ({skipped} unreadable)" if skipped else ""))
    with torch.no_grad():
        reference = model(calibration)
        quantized = quantize_int8(torch, model, example, calibration, arch)
        try:
            module = torch.jit.trace(quantized, example,
                                     check_trace=False).eval()
        except Exception as e:
            raise ExportError(f"tracing the int8 {arch} failed: "
                              f"{short_error(e)}")
        out = module(calibration)
    if out.shape != reference.shape or not torch.isfinite(out).all():
        raise ExportError(f"int8 {arch}: output shape {tuple(out.shape)} or "
                          "values are wrong (NaN/Inf)")
    # Agreement with fp32 on the calibration images: what retrieval sees
    # (cosine of the embeddings, which imgsearch L2-normalises).
    cos = torch.nn.functional.cosine_similarity(out, reference, dim=1)
    note(f"int8 vs fp32 on the calibration images: cosine mean "
         f"{cos.mean().item():.4f}, min {cos.min().item():.4f}")
    if cos.mean().item() < 0.9:
        warn("int8 embeddings differ much from fp32 (mean cosine < 0.9); "
             "check that --mean/--std match the weights and that --calibrate "
             "holds representative images")
    quantization = {
        "quantized": "int8",
        "quantized_engine": QUANT_ENGINE,
        "calibration_images": int(n_cal),
        "calibration_cosine_mean": round(cos.mean().item(), 5),
    }
    meta = make_metadata(torch, args.name or arch, weights_tag, dim, size,
                         resize, mean, std, quantization)
    save_atomic(torch, module, args.output,
                {META_NAME: metadata_json(meta)})
    output_summary(args.output, meta, time.monotonic() - t0)
    return 0


# ----------------------------------------------------------------------------
# import


def parse_triple(text, opt):
    parts = [p.strip() for p in text.split(",")]
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        vals = []
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(
            f"{opt} needs three comma-separated numbers R,G,B, got {text!r}")
    return vals


def default_resize(size):
    # torchvision convention: crop = 0.875 * resize (224 <- 256).
    return int(round(size / 0.875))


def check_sizes(size, resize):
    if size < 1:
        raise ExportError("--input-size must be positive")
    if resize < size:
        raise ExportError(f"--resize ({resize}) must be >= --input-size "
                          f"({size}): the crop is taken from the resized image")


def cmd_import(args):
    t0 = time.monotonic()
    if any(s <= 0 for s in args.std):
        raise ExportError("--std values must be positive")
    size = args.input_size
    resize = args.resize if args.resize is not None else \
        default_resize(size)
    check_sizes(size, resize)
    extra = read_extra_files(args.input)  # also checks it is a zip archive
    with zipfile.ZipFile(args.input) as z:
        is_script = any(re.match(r"^[^/]+/code/", n) for n in z.namelist())
    if not is_script:
        raise ExportError(
            f"{args.input} is not a TorchScript file (no code/ in the "
            "archive; if it is a torch.save()d torchvision state_dict, use "
            f"'{PROG} ARCH --weights {args.input}' instead)")
    torch, _ = import_torch()
    try:
        module = torch.jit.load(args.input, map_location="cpu")
    except Exception as e:
        raise ExportError(f"cannot load {args.input} as TorchScript: "
                          f"{short_error(e)}")
    try:
        module.eval()
    except Exception:
        pass  # e.g. frozen modules without a 'training' attribute
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, size, size, generator=gen)
    with torch.no_grad():
        try:
            y = module(x)
        except Exception as e:
            raise ExportError(
                f"running {args.input} on a [2, 3, {size}, {size}] float32 "
                f"input failed: {short_error(e)}")
    if not torch.is_tensor(y):
        raise ExportError(
            f"{args.input} returns {type(y).__name__}, not a tensor; "
            "imgsearch needs a module whose forward returns one [N, D] tensor")
    shape = tuple(y.shape)
    if y.dim() == 4:
        n, c, h, w = shape
        raise ExportError(
            f"{args.input} returns a 4-D feature map {list(shape)} "
            "([N, C, H, W]); imgsearch needs [N, D] embeddings. Wrap it with "
            "pooling first, e.g. torch.flatten(torch.nn.functional."
            "adaptive_avg_pool2d(x, 1), 1) (global average pool, "
            f"D = {c}), save that with torch.jit.script/trace and import the "
            "result")
    if y.dim() != 2 or shape[0] != 2:
        raise ExportError(
            f"{args.input} returns shape {list(shape)} for a batch of 2; "
            "imgsearch needs [N, D]")
    if not y.is_floating_point():
        raise ExportError(f"{args.input} returns {y.dtype}; imgsearch needs "
                          "floating-point embeddings")
    if y.dtype != torch.float32:
        warn(f"{args.input} returns {y.dtype}; imgsearch expects float32")
    if not torch.isfinite(y).all():
        warn(f"{args.input} produced NaN/Inf on a random input")
    dim = shape[1]

    name = args.name or os.path.splitext(os.path.basename(args.input))[0]
    meta = make_metadata(torch, name, args.weights, dim, size, resize,
                         args.mean, args.std)
    if args.fp16:
        # Half the bytes; imgsearch (model.cpp) converts float16 weights back to
        # float32 on load. Check the round trip on the probe input.
        module.half()
        module.float()
        with torch.no_grad():
            y16 = module(x)
        cos = torch.nn.functional.cosine_similarity(y.float(), y16.float()).min()
        if not cos >= 0.999:
            raise ExportError(f"float16 weights change the output too much "
                              f"(cosine {float(cos):.5f} < 0.999)")
        note(f"float16 weights: output cosine to the original >= "
             f"{float(cos):.6f}")
        module.half()
        meta["weights_dtype"] = "float16"
    if META_NAME in extra:
        note(f"replacing the existing {META_NAME} in {args.input}")
    extra[META_NAME] = metadata_json(meta)
    save_atomic(torch, module, args.output, extra)
    output_summary(args.output, meta, time.monotonic() - t0)
    return 0


# ----------------------------------------------------------------------------
# info


def cmd_info(args):
    extra = read_extra_files(args.file)
    if META_NAME not in extra:
        others = sorted(extra)
        more = f" (other extra files: {', '.join(others)})" if others else ""
        print(f"{args.file}: no imgsearch metadata ({META_NAME}){more}; "
              f"add it with '{PROG} import'", file=sys.stderr)
        return 1
    raw = extra[META_NAME].decode("utf-8", errors="replace")
    try:
        meta = json.loads(raw)
    except ValueError as e:
        sys.stdout.write(raw)
        raise ExportError(f"{args.file}: {META_NAME} is not valid JSON: {e}")
    if isinstance(meta, dict):
        sys.stdout.write(metadata_json(meta))
    else:
        print(json.dumps(meta))
    return 0


# ----------------------------------------------------------------------------
# Command line


class _HelpFormatter(argparse.HelpFormatter):
    """Show '(default: X)' only for options that have a real default."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("%(default)" not in text and action.default is not None
                and action.default is not argparse.SUPPRESS
                and action.option_strings and action.nargs != 0):
            text += " (default: %(default)s)"
        return text


def build_parser():
    epilog = (
        "examples:\n"
        f"  {PROG} resnet50 --weights imagenet -o resnet50.pt\n"
        f"  {PROG} vgg16 --weights ~/Downloads/vgg16-397923af.pth -o vgg16.pt\n"
        f"  {PROG} mobilenet_v2 --weights random -o /tmp/mnv2-random.pt\n"
        f"  {PROG} import embed.pt --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5 "
        "-o embed-imgsearch.pt\n"
        f"  {PROG} info resnet50.pt\n\n"
        "Run '%(prog)s COMMAND --help' for the options of each command.\n"
        "Use an interpreter that has torch and torchvision, e.g. "
        "/usr/bin/python3.")
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Export self-describing TorchScript feature extractors "
                    "for imgsearch. Every written file embeds "
                    f"'{META_NAME}' metadata (output dimension and "
                    "preprocessing) that imgsearch reads.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    for arch, (_, _, dim, desc) in ARCHS.items():
        a = sub.add_parser(
            arch, help=f"export {desc.split(':')[0]}",
            description=f"Export {desc}. Input: float32 NCHW RGB, "
                        "normalised with the ImageNet mean/std. Output: "
                        f"[N, {dim}] float32, not L2-normalised. The model "
                        "is put in eval mode, traced (not frozen, so that "
                        "imgsearch can convert it to bf16) and checked "
                        "against the eager model.",
            formatter_class=_HelpFormatter)
        a.set_defaults(func=cmd_export, arch=arch)
        a.add_argument(
            "--weights", required=True, metavar="imagenet|random|PATH",
            help="'imagenet': torchvision's IMAGENET1K_V1 weights (downloads "
                 "them, needs network unless already in the torch hub "
                 "cache); 'random': seeded random initialisation, for tests "
                 "and speed benchmarks ONLY; PATH: a local torchvision "
                 f"state_dict .pth for {ARCHS[arch][0]} (loaded strictly)")
        a.add_argument("-o", "--output", required=True, metavar="FILE",
                       help="output TorchScript file (written atomically)")
        a.add_argument("--batch-example", type=int, default=1, metavar="N",
                       help="batch size of the example input used for "
                            "tracing (the saved model accepts any batch "
                            "size)")
        a.add_argument("--seed", type=int, default=0,
                       help="random seed for --weights random and the "
                            "example inputs")
        a.add_argument("--name", default=None,
                       help="model name stored in the metadata (default: "
                            "the architecture name)")
        a.add_argument("--input-size", type=int, default=224, metavar="S",
                       help="center-crop size stored in the metadata and "
                            "used for tracing")
        a.add_argument("--resize", type=int, default=None, metavar="R",
                       help="shorter side is resized to R before the crop "
                            "(default: 256 for 224, i.e. S/0.875)")
        a.add_argument("--mean", default=None, metavar="R,G,B",
                       type=lambda s: parse_triple(s, "--mean"),
                       help="per-channel mean the weights expect, recorded "
                            "in the metadata (default: ImageNet's "
                            "0.485,0.456,0.406)")
        a.add_argument("--std", default=None, metavar="R,G,B",
                       type=lambda s: parse_triple(s, "--std"),
                       help="per-channel std (default: ImageNet's "
                            "0.229,0.224,0.225)")
        a.add_argument("--quantize", choices=["none", "int8"], default="none",
                       help="int8: static post-training quantisation "
                            "(FX, oneDNN engine; int8 weights per channel, "
                            "uint8 activations) calibrated on --calibrate. "
                            "imgsearch runs such a file in int8 with "
                            "--precision auto")
        a.add_argument("--calibrate", default=None, metavar="DIR",
                       help="folder of your own images (searched "
                            "recursively) to calibrate activation ranges "
                            "on, preprocessed as the model's metadata says")
        a.add_argument("--calibrate-count", type=int, default=200,
                       metavar="N",
                       help="number of images taken from --calibrate, "
                            "spread evenly over its sorted listing")

    i = sub.add_parser(
        "import", help="add imgsearch metadata to an existing TorchScript "
                       "file",
        description="Load an existing TorchScript feature extractor, run it "
                    "once on a random [2, 3, S, S] input to find its output "
                    "dimension (it must return [N, D]), and save a copy "
                    f"with '{META_NAME}' metadata. Other extra files in the "
                    "archive are kept. Only import models you trust: "
                    "loading and running TorchScript can execute code.",
        formatter_class=_HelpFormatter)
    i.set_defaults(func=cmd_import)
    i.add_argument("input", metavar="INPUT.pt",
                   help="TorchScript file (torch.jit.save output)")
    i.add_argument("--mean", required=True, metavar="R,G,B",
                   type=lambda s: parse_triple(s, "--mean"),
                   help="per-channel mean, applied after dividing pixels "
                        "by 255")
    i.add_argument("--std", required=True, metavar="R,G,B",
                   type=lambda s: parse_triple(s, "--std"),
                   help="per-channel std, applied after dividing pixels "
                        "by 255")
    i.add_argument("--input-size", type=int, default=224, metavar="S",
                   help="center-crop size the model expects")
    i.add_argument("--resize", type=int, default=None, metavar="R",
                   help="shorter side is resized to R before the crop "
                        "(default: 256 for 224, i.e. S/0.875)")
    i.add_argument("--name", default=None,
                   help="model name stored in the metadata (default: the "
                        "input file name without extension)")
    i.add_argument("--weights", default="imported", metavar="LABEL",
                   help="what the weights are, stored in the metadata "
                        "(e.g. imagenet)")
    i.add_argument("--fp16", action="store_true",
                   help="store the weights as float16 (half the file; "
                        "imgsearch converts them back to float32 on load, "
                        "and the output is checked against the original)")
    i.add_argument("-o", "--output", required=True, metavar="OUT.pt",
                   help="output TorchScript file (written atomically; may "
                        "be the input file)")

    f = sub.add_parser(
        "info", help="print the metadata embedded in a file",
        description=f"Print the '{META_NAME}' metadata of a TorchScript "
                    "file as JSON on stdout. Exit status 1 if there is none. "
                    "Reads the zip archive only; no model code is run.")
    f.set_defaults(func=cmd_info)
    f.add_argument("file", metavar="FILE.pt")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ExportError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
