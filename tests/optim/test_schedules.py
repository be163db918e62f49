"""Learning-rate schedules: values per epoch against torch's schedulers and hand-worked warm-ups."""

from __future__ import annotations

import math

import pytest
from conftest import import_torch

from xpnet import TrainConfig, XpnetError
from xpnet.optim.schedules import Schedule

torch = import_torch()

BASE_LR = 0.1


def torch_lrs(make_scheduler, epochs: int) -> list[float]:
    """The learning rate torch's scheduler gives each epoch."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE_LR)
    scheduler = make_scheduler(optimizer)
    rates = []
    for _ in range(epochs):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return rates


def xpnet_lrs(schedule: Schedule, epochs: int) -> list[float]:
    return [schedule.lr(BASE_LR, epoch) for epoch in range(epochs)]


def test_constant_schedule_keeps_the_learning_rate():
    assert xpnet_lrs(Schedule("constant", total_epochs=5), 8) == [BASE_LR] * 8


def test_step_schedule_matches_torch_step_lr():
    expected = torch_lrs(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5), 10)
    assert xpnet_lrs(Schedule("step", step_size=3, gamma=0.5), 10) == pytest.approx(expected, rel=1e-12)


def test_cosine_schedule_matches_torch_cosine_annealing():
    expected = torch_lrs(lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=8, eta_min=0.01), 9)
    assert xpnet_lrs(Schedule("cosine", total_epochs=8, min_lr=0.01), 9) == pytest.approx(expected, rel=1e-12)


def test_cosine_stays_at_its_minimum_after_the_last_epoch():
    schedule = Schedule("cosine", total_epochs=4, min_lr=0.01)
    assert xpnet_lrs(schedule, 7)[4:] == pytest.approx([0.01] * 3)


def test_warm_up_ramps_linearly_then_hands_over():
    constant = Schedule("constant", warmup_epochs=3)
    assert xpnet_lrs(constant, 5) == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])
    step = Schedule("step", warmup_epochs=2, step_size=2, gamma=0.1)
    assert xpnet_lrs(step, 6) == pytest.approx([0.1 / 3, 0.2 / 3, 0.1, 0.1, 0.01, 0.01])


def test_cosine_after_warm_up_spans_the_remaining_epochs():
    schedule = Schedule("cosine", total_epochs=6, warmup_epochs=2)
    cosine = [0.05 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert xpnet_lrs(schedule, 6) == pytest.approx([0.1 / 3, 0.2 / 3, *cosine])


def test_the_training_config_builds_its_schedule_over_its_epochs():
    schedule = TrainConfig(schedule="cosine", epochs=10, warmup_epochs=1).make_schedule()
    assert (schedule.kind, schedule.total_epochs, schedule.warmup_epochs) == ("cosine", 10, 1)


def test_bad_schedules_are_refused_by_name():
    with pytest.raises(XpnetError, match="unknown schedule 'linear': choose one of constant, step, cosine"):
        Schedule("linear")
    with pytest.raises(XpnetError, match="step_size must be a positive integer, got 0"):
        Schedule("step", step_size=0)


def test_invscaling_divides_by_the_samples_seen_plus_one_to_the_power_t():
    """scikit-learn's invscaling: the first epoch at the initial rate, then ``lr / (t + 1) ** power_t``
    with ``t`` the samples seen, here 4 an epoch."""
    schedule = Schedule("invscaling", power_t=0.25, samples_per_epoch=4)
    assert xpnet_lrs(schedule, 3) == pytest.approx([0.1, 0.1 / 5**0.25, 0.1 / 9**0.25])
