"""Optimizer steps on every backend against ``torch.optim`` fed the same gradients, step after step."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_array, import_torch, on

from xpnet import XpnetError
from xpnet.arrays.backend import to_numpy
from xpnet.arrays.flat import Flat, Views
from xpnet.optim import OPTIMIZERS, make

torch = import_torch()

N_STEPS = 6
LEARNING_RATES = [0.1, 0.1, 0.05, 0.05, 0.02, 0.01]  # as a schedule would change them between steps
SHAPES = [(3, 4), (4,)]


def torch_optimizer(name: str, params, weight_decay: float):
    if name == "sgd":
        return torch.optim.SGD(params, lr=1.0, weight_decay=weight_decay)
    if name in ("momentum", "nesterov"):
        return torch.optim.SGD(params, lr=1.0, momentum=0.9, nesterov=name == "nesterov", weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=1.0, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=1.0, weight_decay=weight_decay)
    return torch.optim.AdamW(params, lr=1.0, weight_decay=weight_decay)


def host_run(seed: int = 0):
    """Initial parameters and one gradient per parameter per step."""
    rng = np.random.default_rng(seed)
    initial = [rng.normal(size=shape).astype(np.float32) for shape in SHAPES]
    gradients = [[rng.normal(size=shape).astype(np.float32) for shape in SHAPES] for _ in range(N_STEPS)]
    return initial, gradients


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_steps_match_torch_optim(backend, name, weight_decay):
    xp = backend.xp
    initial, gradients = host_run()
    params = [on(backend, p) for p in initial]
    optimizer = make(name, weight_decay=weight_decay)
    reference = [torch.tensor(p, requires_grad=True) for p in initial]
    reference_optimizer = torch_optimizer(name, reference, weight_decay)
    for lr, step_gradients in zip(LEARNING_RATES, gradients):
        params = optimizer.step(params, [on(backend, g) for g in step_gradients], lr)
        for group in reference_optimizer.param_groups:
            group["lr"] = lr
        for tensor, gradient in zip(reference, step_gradients):
            tensor.grad = torch.tensor(gradient)
        reference_optimizer.step()
        for param, tensor in zip(params, reference):
            assert_array(param, tensor.detach().numpy(), backend, dtype=xp.float32, rtol=1e-5, atol=1e-6)
    assert optimizer.steps == N_STEPS


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_state_lives_on_the_device_and_persists_across_steps(backend, name):
    """The buffers stay on the parameters' device and carry over; the step returns new arrays and leaves
    the ones it was given as they were (the reference never writes into them), except on NumPy, whose
    fast paths update in place and return the same arrays."""
    xp = backend.xp
    initial, gradients = host_run(1)
    params = [on(backend, p) for p in initial]
    optimizer = make(name)
    params = optimizer.step(params, [on(backend, g) for g in gradients[0]], 0.01)
    buffers = {buffer: [np.array(to_numpy(array)) for array in arrays] for buffer, arrays in optimizer.state.items()}
    live = {buffer: list(arrays) for buffer, arrays in optimizer.state.items()}
    given = [np.array(to_numpy(param)) for param in params]
    assert set(buffers) == ({"velocity"} if name == "momentum" else {"first_moment", "second_moment"})
    new_params = optimizer.step(params, [on(backend, g) for g in gradients[1]], 0.01)
    in_place = backend.is_numpy
    for old, new, values in zip(params, new_params, given, strict=True):
        assert (new is old) == in_place
        if not in_place:
            assert_array(old, values, backend, rtol=0)
        assert not np.array_equal(to_numpy(new), values)
    for buffer, arrays in optimizer.state.items():
        for before, old_array, after, shape in zip(buffers[buffer], live[buffer], arrays, SHAPES, strict=True):
            assert (after is old_array) == in_place
            assert not np.array_equal(to_numpy(after), before)
            assert_array(after, to_numpy(after), backend, dtype=xp.float32)
            assert tuple(after.shape) == shape
    assert optimizer.steps == 2


def test_momentum_velocity_matches_torch_momentum_buffer(backend):
    initial, gradients = host_run(2)
    params = [on(backend, p) for p in initial]
    optimizer = make("momentum")
    reference = [torch.tensor(p, requires_grad=True) for p in initial]
    reference_optimizer = torch.optim.SGD(reference, lr=0.1, momentum=0.9)
    for step_gradients in gradients[:3]:
        params = optimizer.step(params, [on(backend, g) for g in step_gradients], 0.1)
        for tensor, gradient in zip(reference, step_gradients):
            tensor.grad = torch.tensor(gradient)
        reference_optimizer.step()
    for velocity, tensor in zip(optimizer.state["velocity"], reference):
        expected = reference_optimizer.state[tensor]["momentum_buffer"].numpy()
        assert_array(velocity, expected, backend, dtype=backend.xp.float32, rtol=1e-6)


def test_bad_optimizer_settings_are_refused_by_name():
    with pytest.raises(XpnetError, match="unknown optimizer 'adagrad': choose one of adam, adamw, rmsprop"):
        make("adagrad")
    with pytest.raises(XpnetError, match="Nesterov momentum needs momentum > 0"):
        make("nesterov", momentum=0.0)
    with pytest.raises(XpnetError, match="weight_decay must be >= 0, got -1"):
        make("adam", weight_decay=-1)
    with pytest.raises(XpnetError, match=r"momentum must be in \[0, 1\), got 1.5"):
        make("momentum", momentum=1.5)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_fresh_optimizer_given_the_state_dict_continues_exactly_as_the_original(backend, name):
    xp = backend.xp
    initial, gradients = host_run(3)
    original = make(name)
    assert original.state_dict() == {"steps": 0, "buffers": {}}
    params = [on(backend, p) for p in initial]
    for step_gradients in gradients[:3]:
        params = original.step(params, [on(backend, g) for g in step_gradients], 0.05)
    state = original.state_dict()
    assert state["steps"] == 3 and set(state["buffers"]) == set(original.buffers)
    for buffer, arrays in state["buffers"].items():
        assert all(a is b for a, b in zip(arrays, original.state[buffer], strict=True))  # live, not copies
    resumed = make(name)
    copies = {buffer: [xp.asarray(a, copy=True) for a in arrays] for buffer, arrays in state["buffers"].items()}
    resumed.load_state_dict({"steps": state["steps"], "buffers": copies})
    resumed_params = [xp.asarray(p, copy=True) for p in params]
    for step_gradients in gradients[3:]:
        params = original.step(params, [on(backend, g) for g in step_gradients], 0.05)
        resumed_params = resumed.step(resumed_params, [on(backend, g) for g in step_gradients], 0.05)
    assert resumed.steps == original.steps == N_STEPS
    for resumed_param, param in zip(resumed_params, params, strict=True):
        assert_array(resumed_param, to_numpy(param), backend, dtype=xp.float32, rtol=0)
    for buffer, arrays in original.state.items():
        for resumed_array, array in zip(resumed.state[buffer], arrays, strict=True):
            assert_array(resumed_array, to_numpy(array), backend, dtype=xp.float32, rtol=0)


def test_load_state_dict_adopts_the_other_optimizers_arrays():
    initial, gradients = host_run(4)
    original = make("adam")
    original.step(initial, gradients[0], 0.01)
    adopted = make("adam")
    adopted.load_state_dict(original.state_dict())
    assert adopted.steps == 1
    assert adopted.state.keys() == original.state.keys()
    for buffer, arrays in adopted.state.items():
        assert all(a is b for a, b in zip(arrays, original.state[buffer], strict=True))


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_views_of_one_flat_buffer_step_as_one_array_to_the_same_bits(backend, name):
    """A network's parameters and gradients as views of flat buffers: the optimizer updates them as one
    array, with its buffers flat too and still one per parameter in ``state``, exactly as one by one;
    buffers loaded one per parameter take the flat layout and continue alike."""
    xp = backend.xp
    initial, gradients = host_run(5)
    one_by_one, whole = make(name, weight_decay=0.01), make(name, weight_decay=0.01)
    params = [on(backend, p) for p in initial]
    views = Flat.of([on(backend, p) for p in initial]).views()
    for step, step_gradients in enumerate(gradients):
        if step == 3:  # a fresh optimizer given the state as a file holds it, one array per parameter
            state = whole.state_dict()
            whole = make(name, weight_decay=0.01)
            buffers = {name: [xp.asarray(a, copy=True) for a in arrays] for name, arrays in state["buffers"].items()}
            whole.load_state_dict({"steps": state["steps"], "buffers": buffers})
        params = one_by_one.step(params, [on(backend, g) for g in step_gradients], LEARNING_RATES[step])
        views = whole.step(views, Flat.of([on(backend, g) for g in step_gradients]).views(), LEARNING_RATES[step])
        assert isinstance(views, Views)
        for view, param in zip(views, params, strict=True):
            assert_array(view, to_numpy(param), backend, dtype=xp.float32, rtol=0)
    for buffer, arrays in one_by_one.state.items():
        assert isinstance(whole.state[buffer], Views)
        for flat_array, array in zip(whole.state[buffer], arrays, strict=True):
            assert_array(flat_array, to_numpy(array), backend, dtype=xp.float32, rtol=0)


def test_adam_betas_and_eps_come_from_the_settings_as_torch_takes_them(backend):
    """``adam_beta1``, ``adam_beta2`` and ``adam_eps`` (``--adam-betas``, ``--adam-eps``) reach the rule."""
    import xpnet

    initial, gradients = host_run(6)
    params = [on(backend, p) for p in initial]
    config = xpnet.TrainConfig(optimizer="adam", adam_beta1=0.5, adam_beta2=0.9, adam_eps=1e-3)
    optimizer = config.make_optimizer()
    reference = [torch.tensor(p, requires_grad=True) for p in initial]
    reference_optimizer = torch.optim.Adam(reference, lr=0.1, betas=(0.5, 0.9), eps=1e-3)
    for step_gradients in gradients:
        params = optimizer.step(params, [on(backend, g) for g in step_gradients], 0.1)
        for tensor, gradient in zip(reference, step_gradients):
            tensor.grad = torch.tensor(gradient)
        reference_optimizer.step()
    for param, tensor in zip(params, reference, strict=True):
        assert_array(param, tensor.detach().numpy(), backend, rtol=1e-5, atol=1e-6)
    with pytest.raises(XpnetError, match=r"adam_beta2 must be in \[0, 1\), got 1.0"):
        xpnet.TrainConfig(adam_beta2=1.0)
    with pytest.raises(XpnetError, match="adam_eps must be positive, got 0"):
        xpnet.TrainConfig(adam_eps=0)
