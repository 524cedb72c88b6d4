#!/usr/bin/python3
"""One case of the bnlab / PyTorch comparison (bench/compare.lua), PyTorch side.

Same options and the same one line of JSON as bench/step_bench.lua:

    /usr/bin/python3 bench/step_bench.py --model resnet --depth 56 --norm bn \
        --threads 2 --mode train --steps 10 --warmup 2

The models are those of lua/bnlab/models.lua, layer for layer:

- resnet: He et al. (2016) CIFAR ResNet, depth 6n + 2: a 3x3 stem conv (16
  channels, no bias) + BN + ReLU, three stages of n BasicBlocks (16, 32, 64
  channels; stages 2 and 3 start with stride 2), global average pooling and a
  linear classifier. A block is conv3x3(stride) - BN - ReLU - conv3x3 - BN,
  plus the shortcut, then ReLU. The option-A shortcut keeps every 2nd pixel
  and pads the channels with zeros on both sides (extra // 2 before, the rest
  after). norm "none" removes every BN (the convs stay without bias). Conv
  weights: kaiming_normal_(mode="fan_out", nonlinearity="relu"); BN weight 1,
  bias 0; the linear layer keeps PyTorch's default.
- cnn: conv3x3(1 -> 32, pad 1) - [BN] - ReLU - maxpool 2 - conv3x3(32 -> 64)
  - [BN] - ReLU - maxpool 2 - flatten - linear(3136 -> 128) - [BN1d] - ReLU -
  linear(128 -> 10); layers followed by BN have no bias; Kaiming conv init.

A training step is zero_grad + forward + cross-entropy + backward + SGD
(lr 0.1, momentum 0.9, weight decay 1e-4) on one fixed random batch; an
inference step is a forward in eval mode under torch.no_grad().
"""
import argparse
import json
import resource
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class ShortcutA(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        extra = cout - cin
        self.pads = (0, 0, 0, 0, extra // 2, extra - extra // 2)

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, self.pads)


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride, use_bn):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout) if use_bn else None
        self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout) if use_bn else None
        if stride == 1 and cin == cout:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = ShortcutA(cin, cout, stride)

    def forward(self, x):
        out = self.conv1(x)
        if self.bn1 is not None:
            out = self.bn1(out)
        out = F.relu(out)
        out = self.conv2(out)
        if self.bn2 is not None:
            out = self.bn2(out)
        return F.relu(out + self.shortcut(x))


def kaiming_convs(net):
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def resnet(depth, norm, width=16, classes=10, cin=3):
    if (depth - 2) % 6 != 0:
        raise SystemExit(f"step_bench.py: --depth expects 6n + 2, got {depth}")
    n = (depth - 2) // 6
    use_bn = norm == "bn"
    layers = [nn.Conv2d(cin, width, 3, stride=1, padding=1, bias=False)]
    if use_bn:
        layers.append(nn.BatchNorm2d(width))
    layers.append(nn.ReLU())
    channels = width
    for s in range(3):
        out = width << s
        blocks = []
        for b in range(n):
            stride = 2 if (s > 0 and b == 0) else 1
            blocks.append(BasicBlock(channels, out, stride, use_bn))
            channels = out
        layers.append(nn.Sequential(*blocks))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)]
    net = nn.Sequential(*layers)
    kaiming_convs(net)
    return net


def cnn(norm, cin=1, classes=10, width=32, hidden=128, size=28):
    use_bn = norm == "bn"
    layers = []
    c = cin
    for k in (1, 2):
        out = width * k
        layers.append(nn.Conv2d(c, out, 3, padding=1, bias=not use_bn))
        if use_bn:
            layers.append(nn.BatchNorm2d(out))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        c = out
    side = size // 4
    layers.append(nn.Flatten())
    features = c * side * side
    layers.append(nn.Linear(features, hidden, bias=not use_bn))
    if use_bn:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(), nn.Linear(hidden, classes)]
    net = nn.Sequential(*layers)
    kaiming_convs(net)
    return net


def count_flops(net, x):
    """FLOPs of the conv and linear layers, as in step_bench.lua: forward
    2*N*O*C/groups*kh*kw*OH*OW (linear 2*N*in*out); a training step adds the
    weight gradient and, where the input needs a gradient, the input gradient."""
    fwd = [0]
    bwd = [0]

    def hook(m, inputs, out):
        inp = inputs[0]
        if isinstance(m, nn.Conv2d):
            o, c, kh, kw = m.weight.shape
            f = 2 * out.shape[0] * o * c * kh * kw * out.shape[2] * out.shape[3]
        else:
            f = 2 * inp.shape[0] * m.in_features * m.out_features
        fwd[0] += f
        bwd[0] += f + (f if inp.requires_grad else 0)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    net(x)  # recorded, as on the bnlab side, and never backpropagated
    for h in handles:
        h.remove()
    return fwd[0], fwd[0] + bwd[0]


def rss_mb():
    """Resident set size now and at its peak (VmRSS, VmHWM), MiB."""
    now = peak = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    now = int(line.split()[1]) / 1024
                elif line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) / 1024
    except OSError:
        pass
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return now, peak


def build_summary():
    """The parts of torch.__config__.show() that matter for CPU speed."""
    parts = []
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith(("Intel(R) MKL-DNN", "oneDNN", "OpenMP", "CPU capability")):
            parts.append(line)
        for word in line.replace(",", " ").split():
            if word.startswith("BLAS_INFO="):
                parts.append(word)
    return ", ".join(parts)


def main():
    p = argparse.ArgumentParser(description="PyTorch side of bench/compare.lua: times training or inference steps.")
    p.add_argument("--model", default="resnet", choices=["resnet", "cnn"])
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--norm", default="bn", choices=["bn", "none"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--mode", default="train", choices=["train", "infer"])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.batch < 1 or a.threads < 1:
        raise SystemExit("step_bench.py: --steps, --batch and --threads must be >= 1, --warmup >= 0")

    torch.set_num_threads(a.threads)
    base_rss, _ = rss_mb()
    torch.manual_seed(a.seed)
    if a.model == "resnet":
        net = resnet(a.depth, a.norm)
        x = torch.randn(a.batch, 3, 32, 32)
    else:
        net = cnn(a.norm)
        x = torch.randn(a.batch, 1, 28, 28)
    labels = torch.tensor([(i * 7) % 10 for i in range(1, a.batch + 1)])
    fwd_flops, train_flops = count_flops(net, x)

    if a.mode == "train":
        net.train()
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

        def step():
            opt.zero_grad(set_to_none=True)  # as bnlab (and PyTorch 2) do by default
            loss = F.cross_entropy(net(x), labels)
            loss.backward()
            opt.step()
    else:
        net.eval()

        def step():
            with torch.no_grad():
                net(x)

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    _, peak_rss = rss_mb()
    json.dump({
        "impl": "pytorch",
        "version": torch.__version__,
        "blas": build_summary(),
        "model": a.model,
        "depth": a.depth if a.model == "resnet" else 0,
        "norm": a.norm,
        "threads": torch.get_num_threads(),
        "mode": a.mode,
        "batch": a.batch,
        "steps": a.steps,
        "warmup": a.warmup,
        "times_ms": times,
        "flops_per_step": train_flops if a.mode == "train" else fwd_flops,
        "forward_flops": fwd_flops,
        "base_rss_mb": base_rss,
        "peak_rss_mb": peak_rss,
    }, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
