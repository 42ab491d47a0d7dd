#!/usr/bin/env python3
"""board_exec_example.py - an `exec` board for expgrid-hwagent, in plain
Python (no numpy), following the file contract of docs/coverify.md.

    usage: board_exec_example.py JOBDIR

The agent writes JOBDIR/network.json and JOBDIR/inputs.json; this script
writes JOBDIR/outputs.json with every layer's output codes.  Here the
"board" is a bit-exact software model of the fixed-point datapath (the
specification kernels/board_sim.h implements), so a board entry such as

    - name: py0
      type: sim16
      backend: exec
      options: {command: [python3, docs/examples/board_exec_example.py],
                word_bits: 16, int_bits: 6, round: rnd, overflow: sat,
                timeout_ms: 60000}

passes the known-answer health check and agrees bit for bit with the
design model.  For a real board replace `run_network` with the calls that
load the weights onto the device (a PYNQ overlay's buffers, an XRT
kernel's arguments) and read its per-layer outputs back.

Datapath (per example, per layer): the accumulator starts at the bias code
assigned to the accumulator type; each exact product w * x is added in
input order and the sum assigned to the accumulator type after every
addition; the layer's output is the accumulator assigned to the activation
type; relu and linear act on codes; tanh, sigmoid and sin are the ideal
function of the code's value, quantized to the activation type.
"""
import json
import math
import os
import sys
from fractions import Fraction


class FxType:
    """ap_fixed<W, I, Q, O>: codes are integers, value = code * 2^-F."""

    def __init__(self, d):
        self.w, self.i = d["w"], d["i"]
        self.f = self.w - self.i
        self.round, self.ovf = d["round"], d["overflow"]
        self.lo, self.hi = -(1 << (self.w - 1)), (1 << (self.w - 1)) - 1

    def quantize(self, v, vfrac):
        """Q(v * 2^-vfrac): round to F fraction bits, then overflow."""
        d = vfrac - self.f
        if d > 0:
            q = v >> d                      # floor
            qb = (v >> (d - 1)) & 1         # first dropped bit
            r = (v & ((1 << (d - 1)) - 1)) != 0 if d > 1 else False
        else:
            q, qb, r = v << -d, 0, False
        s = q < 0
        inc = {
            "trn": False,
            "rnd": qb,
            "rnd_zero": qb and (s or r),
            "rnd_min_inf": qb and r,
            "rnd_inf": qb and (not s or r),
            "rnd_conv": qb and ((q & 1) or r),
            "trn_zero": s and (qb or r),
        }[self.round]
        q += 1 if inc else 0
        if self.lo <= q <= self.hi:
            if self.ovf == "sat_sym" and q == self.lo:
                return -self.hi
            return q
        if self.ovf == "sat":
            return self.lo if q < 0 else self.hi
        if self.ovf == "sat_sym":
            return -self.hi if q < 0 else self.hi
        q &= (1 << self.w) - 1              # wrap: low W bits, signed
        return q - (1 << self.w) if q >> (self.w - 1) else q

    def from_float(self, x):
        """The code of a double, rounded exactly: a finite double is
        num / 2^k with integers num and k, which Fraction gives us."""
        fr = Fraction(x)
        return self.quantize(fr.numerator, fr.denominator.bit_length() - 1)


def activation(name, t, c):
    if name == "relu":
        return c if c > 0 else 0
    if name == "linear":
        return c
    v = c / (1 << t.f) if t.f >= 0 else c * (1 << -t.f)
    if name == "tanh":
        p = math.tanh(v)
    elif name == "sigmoid":
        p = 1.0 / (1.0 + math.exp(-v))
    elif name == "sin":
        p = math.sin(v)
    else:
        raise ValueError("unknown activation " + name)
    return t.from_float(p)


def run_network(net, inp):
    ty = {k: FxType(v) for k, v in net["types"].items()}
    wt, bt, at, acc = ty["weight"], ty["bias"], ty["act"], ty["accum"]
    fp = wt.f + at.f
    n, cols = inp["n"], inp["cols"]
    layers = net["layers"]
    outs = [[] for _ in net["outputs"]]
    for e in range(n):
        x = inp["x"][e * cols:(e + 1) * cols]
        for l, layer in enumerate(layers):
            rows, c = layer["rows"], layer["cols"]
            w, b = layer["w"], layer["b"]
            y = []
            for o in range(rows):
                a = acc.quantize(b[o], bt.f) if b is not None else 0
                row = w[o * c:(o + 1) * c]
                for k in range(c):
                    # acc + w*x exactly, then assigned to the accumulator
                    # type: acc is on the accumulator's grid, so shifting
                    # it to the product's fraction bits is exact.
                    a = acc.quantize((a << max(fp - acc.f, 0))
                                     + (row[k] * x[k] << max(acc.f - fp, 0)),
                                     max(fp, acc.f))
                y.append(at.quantize(a, acc.f))
            outs[2 * l].extend(y)
            if l + 1 == len(layers):
                break
            x = [activation(net["act"], at, v) for v in y]
            outs[2 * l + 1].extend(x)
    return [{"name": nm, "codes": cs} for nm, cs in zip(net["outputs"], outs)]


def main():
    job = sys.argv[1]
    with open(os.path.join(job, "network.json")) as f:
        net = json.load(f)
    with open(os.path.join(job, "inputs.json")) as f:
        inp = json.load(f)
    outputs = run_network(net, inp)
    tmp = os.path.join(job, "outputs.json.tmp")
    with open(tmp, "w") as f:
        json.dump({"outputs": outputs}, f)
    os.rename(tmp, os.path.join(job, "outputs.json"))


if __name__ == "__main__":
    main()
