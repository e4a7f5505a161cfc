"""Step functions for the execution tests (module-level, so worker processes can import them)."""

from __future__ import annotations

import numpy as np

from plateflow import chain_breaker, special_inputs, special_outputs
from plateflow.memory import numpy


@numpy
def add_one(stack):
    return stack.astype(np.float32) + 1


@numpy
def double(stack):
    return stack * 2


@numpy
def as_float64(stack):
    return stack.astype(np.float64) / 3.0


@numpy
def as_bool(stack):
    return stack > np.median(stack)


@numpy
def first_plane(stack):
    return stack[:1].copy()


@numpy
def two_of_three(stack):
    return stack[:2].copy()


@numpy
def flat_image(stack):
    return stack[0]


@numpy
def not_an_array(stack):
    return [1, 2, 3]


@special_outputs("mean_value")
@numpy
def returns_only_stack(stack):
    return stack


@numpy
def returns_tuple(stack):
    return stack, 1


@numpy
def fail_on_seven(stack):
    if (stack == 7).all():
        raise ValueError("this well is all sevens")
    return stack


@special_outputs("mean_value")
@numpy
def measure_mean(stack):
    return stack, float(stack.mean())


@special_inputs("mean_value")
@numpy
def subtract_mean(stack, mean_value):
    return stack.astype(np.float32) - np.float32(mean_value)


@special_outputs("positions")
@numpy
def find_positions(stack):
    width = stack.shape[2]
    return stack, [(0, i * width) for i in range(len(stack))]


@special_inputs("positions")
@numpy
def assemble(stack, positions):
    height, width = stack.shape[1:]
    right = max(x for _, x in positions) + width
    canvas = np.zeros((height, right), dtype=stack.dtype)
    for tile, (y, x) in zip(stack, positions):
        canvas[y : y + height, x : x + width] = tile
    return canvas[None]


@chain_breaker
@numpy
def zero_out(stack):
    return np.zeros_like(stack)


@special_outputs("site_stats", materialize=True)
@numpy
def site_stats(stack):
    rows = [{"slice": i, "mean": float(plane.mean()), "count": int((plane > plane.mean()).sum())} for i, plane in enumerate(stack)]
    return stack, rows


@special_outputs("peak", materialize=True)
@numpy
def peak_value(stack):
    return stack, np.asarray(stack.max(axis=(1, 2)))


class _ExitAfterResult:
    """A worker's pipe end whose process ends right after it sends a well's result."""

    def __init__(self, conn):
        self.conn = conn

    def recv(self):
        return self.conn.recv()

    def send(self, message):
        self.conn.send(message)
        if message[0] == "result":
            import os

            os._exit(0)  # dies idle: its well is done, it holds no other


def worker_exiting_after_each_well(conn, plate_blob):
    """``runner._worker_main``, but the process ends as soon as it has sent its first well's result."""
    from plateflow.execution import runner

    runner._worker_main(_ExitAfterResult(conn), plate_blob)
