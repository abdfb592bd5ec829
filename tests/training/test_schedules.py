"""ctcnet.training.schedules: every schedule runs its whole length, whatever the step count (a
one-cycle warm-up of exactly one step divided by zero: 10 steps at 0.1, fewer steps a process
under DDP)."""

import warnings

import pytest
import torch

from ctcnet.training.schedules import lr_schedule


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
@pytest.mark.parametrize("fraction", [0.05, 0.1, 0.2, 0.3])
def test_a_schedule_runs_its_whole_length_for_any_step_count(schedule, fraction):
    for total in range(1, 41):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = lr_schedule(optimizer, schedule, 0.1, fraction, total)
        rates = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (torch's note on the order of step calls)
            for _ in range(total):
                optimizer.step()
                scheduler.step()
                rates.append(optimizer.param_groups[0]["lr"])
        assert all(0 <= r <= 0.1 + 1e-9 for r in rates), (schedule, fraction, total)
