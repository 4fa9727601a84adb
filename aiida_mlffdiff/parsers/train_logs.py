"""Readers of the logs and learning-curve files of MACE, NequIP and DeePMD training jobs (no AiiDA).

Each reader takes the retrieved text files (name → content) and returns a :class:`TrainingRecord`: the learning
curve, the final validation errors, whether the engine reported the end of training and of the compile/freeze
step, versions, non-finite values and error messages. Units: energies per atom in meV/atom, forces in meV/Å,
stresses in meV/Å³; losses are dimensionless as each engine defines them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: Curve names (ArrayData array names) with their units.
TRAINING_LOSS = 'training_loss'
VALIDATION_LOSS = 'validation_loss'
ENERGY_RMSE = 'validation_energy_rmse_meV_atom'
FORCES_RMSE = 'validation_forces_rmse_meV_A'
STRESS_RMSE = 'validation_stress_rmse_meV_A3'
LEARNING_RATE = 'learning_rate'

#: Curves whose non-finite values mean a diverged training (stress/virial columns may be NaN for lack of data).
CHECKED_CURVES = (TRAINING_LOSS, VALIDATION_LOSS, ENERGY_RMSE, FORCES_RMSE)


@dataclass
class TrainingRecord:
    """What a training job's files say."""

    #: Name of the x axis: 'epoch' (completed epochs, from 1) or 'step' (optimiser steps).
    x_name: str
    x: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    #: Curve name (see the constants above) → values at ``x``.
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    #: Final validation errors of the deployed model: keys as in the metrics Dict (units in the names).
    final: dict[str, float] = field(default_factory=dict)
    #: Where ``final`` comes from, in words.
    final_source: str = ''
    #: The engine reported the end of training.
    completed: bool = False
    #: The post-processing step (compile, freeze) reported success; ``None`` if the architecture has none.
    postprocessed: bool | None = None
    engine_version: str = ''
    torch_version: str | None = None
    #: Descriptions of non-finite losses/errors (empty: all finite).
    not_finite: list[str] = field(default_factory=list)
    #: Last error message of each program that failed (tracebacks), in order.
    errors: list[str] = field(default_factory=list)
    #: Extra facts for the metrics Dict (e.g. best epoch).
    extra: dict[str, float | int | str] = field(default_factory=dict)
    #: Files the reader needed and did not find.
    missing: list[str] = field(default_factory=list)

    @property
    def has_curve(self) -> bool:
        """Whether at least one point of the learning curve was read."""
        return len(self.x) > 0


#: Error messages longer than this are cut (some engines explain themselves at great length).
MAX_ERROR_CHARS = 300


def last_error(text: str | None) -> str | None:
    """The exception line ending the last traceback in ``text`` (stderr, cut to 300 characters), or ``None``."""
    message = _last_error(text)
    if message and len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 3] + '...'
    return message


def _last_error(text: str | None) -> str | None:
    if not text or 'Traceback (most recent call last)' not in text:
        return None
    tail = text[text.rindex('Traceback (most recent call last)') :]
    lines = [line for line in tail.splitlines() if line.strip()]
    for line in reversed(lines):
        if re.match(r'^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit)\b', line.strip()):
            return line.strip()
    return lines[-1].strip() if lines else None


def _find_non_finite(x_name: str, x: np.ndarray, curves: Mapping[str, np.ndarray]) -> list[str]:
    problems = []
    for name in CHECKED_CURVES:
        values = curves.get(name)
        if values is None or not len(values):
            continue
        bad = ~np.isfinite(values)
        if bad.any():
            first = int(np.argmax(bad))
            problems.append(f'{name} is {values[first]} at {x_name} {x[first]}')
    return problems


def _find(texts: Mapping[str, str], pattern: str) -> str | None:
    """The content of the first file whose name matches ``pattern`` (regular expression), ``None`` if none does."""
    for name in sorted(texts):
        if re.fullmatch(pattern, name):
            return texts[name]
    return None


def _float(value: str | float | None) -> float:
    """A float from a CSV/JSON/log field; empty or missing → NaN."""
    if value is None or value == '':
        return math.nan
    try:
        return float(value)
    except ValueError:
        return math.nan


# ----------------------------------------------------------------------------------------------------------- MACE
def _mace_error_table(log: str) -> dict[str, float]:
    """The validation row of MACE's final error table (the deployed model), as metric keys → value."""
    header: list[str] | None = None
    row: list[str] | None = None
    for line in log.splitlines():
        line = line.strip()
        if not line.startswith('|'):
            continue
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        if cells and cells[0] == 'config_type':
            header, row = cells, None
        elif header and cells and cells[0].startswith('valid'):
            row = cells
    if not header or not row:
        return {}
    final = {}
    for title, value in zip(header, row, strict=False):
        if title.startswith('RMSE E / meV / atom'):
            final['energy_rmse_meV_atom'] = _float(value)
        elif title.startswith('RMSE F / meV / A'):
            final['forces_rmse_meV_A'] = _float(value)
        elif title.startswith('RMSE Stress'):
            final['stress_rmse_meV_A3'] = _float(value)
    return final


def read_mace(texts: Mapping[str, str]) -> TrainingRecord:
    """MACE: ``mlff_run-SEED_train.txt`` (JSON lines: 'opt' per batch, 'eval' per epoch), log, stderr."""
    record = TrainingRecord('epoch')
    log = _find(texts, r'.*_run-\d+\.log') or texts.get('mace.out') or ''
    results = _find(texts, r'.*_run-\d+_train\.txt')
    if not log:
        record.missing.append('the MACE log (logs/*_run-SEED.log or mace.out)')
    if results is None:
        record.missing.append('the MACE learning curve (results/*_run-SEED_train.txt)')
    train_losses: dict[int, list[float]] = {}
    rows: list[dict] = []
    for line in (results or '').splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        epoch = entry.get('epoch')
        if entry.get('mode') == 'opt' and epoch is not None:
            train_losses.setdefault(int(epoch), []).append(_float(entry.get('loss')))
        elif entry.get('mode') == 'eval' and epoch is not None:
            rows.append(entry)
    if rows:
        record.x = np.array([int(r['epoch']) + 1 for r in rows], dtype=int)
        record.curves[TRAINING_LOSS] = np.array(
            [np.mean(train_losses.get(int(r['epoch']), [math.nan])) for r in rows], dtype=float
        )
        record.curves[VALIDATION_LOSS] = np.array([_float(r.get('loss')) for r in rows])
        record.curves[ENERGY_RMSE] = 1000 * np.array([_float(r.get('rmse_e_per_atom')) for r in rows])
        record.curves[FORCES_RMSE] = 1000 * np.array([_float(r.get('rmse_f')) for r in rows])
        if any('rmse_stress' in r for r in rows):
            record.curves[STRESS_RMSE] = 1000 * np.array([_float(r.get('rmse_stress')) for r in rows])
    record.not_finite = _find_non_finite('epoch', record.x, record.curves)
    match = re.search(r'MACE version: (\S+)', log)
    record.engine_version = match.group(1) if match else ''
    record.completed = 'Training complete' in log
    table = _mace_error_table(log)
    if table:
        record.final, record.final_source = table, "MACE's final error table on the validation set (deployed model)"
    elif rows:
        record.final = {
            'energy_rmse_meV_atom': float(record.curves[ENERGY_RMSE][-1]),
            'forces_rmse_meV_A': float(record.curves[FORCES_RMSE][-1]),
        }
        record.final_source = 'last validation of the learning curve'
    for name, value in record.final.items():
        if not math.isfinite(value) and name != 'stress_rmse_meV_A3':
            record.not_finite.append(f'final {name} is {value}')
    error = last_error(texts.get('mace.err'))
    if error:
        record.errors.append(f'mace_run_train: {error}')
    return record


# --------------------------------------------------------------------------------------------------------- NequIP
def read_nequip(texts: Mapping[str, str]) -> TrainingRecord:
    """NequIP: Lightning's ``metrics.csv`` (epoch rows), ``nequip-train``/``nequip-compile`` stdout and stderr."""
    record = TrainingRecord('epoch')
    record.postprocessed = False
    out = texts.get('nequip-train.out') or ''
    metrics = texts.get('metrics.csv')
    if not out:
        record.missing.append('the nequip-train log (nequip-train.out)')
    if metrics is None:
        record.missing.append('the learning curve (csv_log/metrics.csv)')
    by_epoch: dict[int, dict[str, float]] = {}
    table = list(csv.DictReader(io.StringIO(metrics or '')))
    # LearningRateMonitor rows carry a step but no epoch: place them in the epoch that contains their step
    step_to_epoch = {row['step']: row['epoch'] for row in table if row.get('epoch') and row.get('step')}
    for row in table:
        epoch = row.get('epoch') or step_to_epoch.get(row.get('step') or '')
        if epoch in (None, ''):
            continue
        values = by_epoch.setdefault(int(epoch), {})
        for key, value in row.items():
            if key and value not in (None, '') and (key.startswith(('train_loss_epoch/', 'val0_epoch/', 'lr-'))):
                values[key] = _float(value)
    epochs = sorted(e for e, v in by_epoch.items() if 'val0_epoch/weighted_sum' in v)
    if epochs:
        rows = [by_epoch[e] for e in epochs]
        record.x = np.array([e + 1 for e in epochs], dtype=int)
        record.curves[TRAINING_LOSS] = np.array([r.get('train_loss_epoch/weighted_sum', math.nan) for r in rows])
        record.curves[VALIDATION_LOSS] = np.array([r['val0_epoch/weighted_sum'] for r in rows])
        record.curves[ENERGY_RMSE] = 1000 * np.array([r.get('val0_epoch/per_atom_energy_rmse', math.nan) for r in rows])
        record.curves[FORCES_RMSE] = 1000 * np.array([r.get('val0_epoch/forces_rmse', math.nan) for r in rows])
        if any('val0_epoch/stress_rmse' in r for r in rows):
            record.curves[STRESS_RMSE] = 1000 * np.array([r.get('val0_epoch/stress_rmse', math.nan) for r in rows])
        lr_keys = sorted({k for r in rows for k in r if k.startswith('lr-')})
        if lr_keys:
            record.curves[LEARNING_RATE] = np.array([r.get(lr_keys[0], math.nan) for r in rows])
    record.not_finite = _find_non_finite('epoch', record.x, record.curves)
    if epochs and not record.not_finite:
        # the compiled model is the best checkpoint: the epoch of the lowest validation loss (first one on ties)
        best = int(np.argmin(record.curves[VALIDATION_LOSS]))
        record.final = {
            'energy_rmse_meV_atom': float(record.curves[ENERGY_RMSE][best]),
            'forces_rmse_meV_A': float(record.curves[FORCES_RMSE][best]),
        }
        if STRESS_RMSE in record.curves:
            record.final['stress_rmse_meV_A3'] = float(record.curves[STRESS_RMSE][best])
        record.extra['best_epoch'] = int(record.x[best])
        record.final_source = 'validation errors of the best checkpoint (lowest validation loss), the compiled one'
    versions = dict(re.findall(r'\] (torch|e3nn|nequip) (\S+)\s*$', out, flags=re.MULTILINE))
    record.engine_version = versions.get('nequip', '')
    record.torch_version = versions.get('torch')
    record.completed = 'TRAIN RUN END' in out
    record.postprocessed = 'Exported model saved to' in (texts.get('nequip-compile.out') or '')
    for program in ('nequip-train', 'nequip-compile'):
        error = last_error(texts.get(f'{program}.err'))
        if error:
            record.errors.append(f'{program}: {error}')
    return record


# --------------------------------------------------------------------------------------------------------- DeePMD
_DP_TEST = {
    'energy_rmse_meV_atom': r'Energy RMSE/Natoms\s*:\s*(\S+)\s*eV',
    'forces_rmse_meV_A': r'Force\s+RMSE\s*:\s*(\S+)\s*eV/',
    'stress_rmse_meV_A3': r'Stress RMSE\s*:\s*(\S+)\s*eV/',
}


def read_deepmd(texts: Mapping[str, str]) -> TrainingRecord:
    """DeePMD: ``lcurve.out`` (per displayed step), ``dp train``/``freeze``/``test`` stderr (DeePMD logs there)."""
    record = TrainingRecord('step')
    record.postprocessed = False
    train_log = (texts.get('dp-train.err') or '') + (texts.get('dp-train.out') or '')
    lcurve = texts.get('lcurve.out')
    if not train_log:
        record.missing.append('the dp train log (dp-train.err)')
    if lcurve is None:
        record.missing.append('the learning curve (lcurve.out)')
    columns: list[str] = []
    rows: list[list[float]] = []
    for line in (lcurve or '').splitlines():
        if line.startswith('#'):
            names = line.lstrip('#').split()
            if names and names[0] == 'step':
                columns = names
            continue
        fields = line.split()
        if columns and len(fields) == len(columns):
            rows.append([_float(f) for f in fields])
    if rows:
        table = {name: np.array([row[i] for row in rows]) for i, name in enumerate(columns)}
        record.x = table['step'].astype(int)
        mapping = {
            TRAINING_LOSS: 'rmse_trn',
            VALIDATION_LOSS: 'rmse_val',
            ENERGY_RMSE: 'rmse_e_val',
            FORCES_RMSE: 'rmse_f_val',
            LEARNING_RATE: 'lr',
        }
        for name, column in mapping.items():
            if column in table:
                scale = 1000.0 if name in (ENERGY_RMSE, FORCES_RMSE) else 1.0
                record.curves[name] = scale * table[column]
    record.not_finite = _find_non_finite('step', record.x, record.curves)
    # DeePMD stops by itself on a NaN (RuntimeError 'NaN detected at batch N: ...'), often before lcurve.out has a line
    match = re.search(r'NaN detected at batch\s+(\d+)[^\n]*', train_log)
    if match:
        record.not_finite.append(f'dp train stopped: {match.group(0).strip()}')
    match = re.search(r'DeePMD version: (\S+)', train_log)
    record.engine_version = match.group(1) if match else ''
    match = re.search(r'PT Ver:\s+v?([0-9][^\s-]*)', train_log)
    record.torch_version = match.group(1) if match else None
    record.completed = 'Trained model has been saved to' in train_log
    freeze_log = (texts.get('dp-freeze.err') or '') + (texts.get('dp-freeze.out') or '')
    record.postprocessed = 'Saved frozen model to' in freeze_log
    test_log = (texts.get('dp-test.err') or '') + (texts.get('dp-test.out') or '')
    final = {}
    for key, pattern in _DP_TEST.items():
        found = re.findall(pattern, test_log)
        if found:  # the last block is the weighted average over all systems
            final[key] = 1000 * _float(found[-1])
    if 'energy_rmse_meV_atom' in final and 'forces_rmse_meV_A' in final:
        record.final, record.final_source = final, 'dp test of the frozen model on the whole validation set'
    elif rows:
        record.final = {
            'energy_rmse_meV_atom': float(record.curves[ENERGY_RMSE][-1]),
            'forces_rmse_meV_A': float(record.curves[FORCES_RMSE][-1]),
        }
        record.final_source = 'last line of lcurve.out (a sample of the validation set)'
    for name, value in record.final.items():
        if not math.isfinite(value) and name != 'stress_rmse_meV_A3':
            record.not_finite.append(f'final {name} is {value}')
    for program in ('dp-train', 'dp-freeze', 'dp-test'):
        error = last_error(texts.get(f'{program}.err'))
        if error:
            record.errors.append(f'{program.replace("-", " ")}: {error}')
    return record


#: architecture → reader.
READERS: dict[str, Callable[[Mapping[str, str]], TrainingRecord]] = {
    'mace': read_mace,
    'nequip': read_nequip,
    'deepmd': read_deepmd,
}
