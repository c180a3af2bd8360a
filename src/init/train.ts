// The train preset, autoresearch's shape: prepare.py pinned, train.py editable, a trusted evaluate step, val_bpb minimised.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { torchNotebook } from './detect.js';
import { onPath, present, starterFiles, type InitEnv, type Preset } from './plan.js';

const STARTER = ['prepare.py', 'train.py', 'evaluate.py'];

export const trainPreset: Preset = {
  name: 'train',
  plan(repo, env) {
    const notes: string[] = [];
    // The starter is one piece (train.py imports prepare.py), so it is written only into a repo that has neither.
    const starter = !existsSync(join(repo, 'train.py')) && !existsSync(join(repo, 'prepare.py'));
    const files = starter ? starterFiles('train', STARTER) : [];
    if (starter) {
      const notebook = torchNotebook(repo);
      notes.push(`No train.py or prepare.py here: wrote a starter that runs on a CPU with plain Python (a character n-gram model)${notebook ? `; move ${notebook}'s training into train.py, its data and evaluation into prepare.py` : ''}.`);
    }
    const python = pythonRunner(repo, env, notes);
    const evaluate = starter || existsSync(join(repo, 'evaluate.py'));
    if (!evaluate) notes.push('No evaluate.py: the metric is read from train.py\'s own output. A trusted evaluate step (evaluate.py, protected) is safer.');
    if (!starter && !existsSync(join(repo, 'train.py'))) notes.push('train.py is missing: write it; it is the file the agent edits.');

    const gpu = onPath('nvidia-smi', env.path);
    notes.push(gpu ? 'GPU: nvidia-smi is on PATH, so gpu.required is on and each run gets one GPU.' : 'GPU: no nvidia-smi on PATH, so runs use the CPU and gpu.required is off.');

    const venv = python.startsWith('uv') && existsSync(join(repo, '.venv'));
    const config: Record<string, unknown> = {
      editable: ['train.py'],
      protected: [...(starter ? ['prepare.py', 'evaluate.py'] : present(repo, ['prepare.py', 'evaluate.py'])), ...present(repo, ['pyproject.toml', 'uv.lock', 'requirements.txt'])],
      run: {
        command: `${python} train.py`,
        // autoresearch trains for 5 minutes, then evaluates; the starter takes a second.
        budgetSeconds: starter ? 60 : 600,
        ...(starter ? { outputs: ['out/**'] } : {}),
        ...(venv ? { inputs: ['.venv'] } : {}),
      },
      ...(evaluate ? { evaluate: { command: `${python} evaluate.py`, budgetSeconds: starter ? 60 : 600 } } : {}),
      metric: { name: 'val_bpb', direction: 'minimize', ...(evaluate ? {} : { secondary: ['peak_vram_mb'] }) },
      decision: { rule: 'significant' },
      ...(gpu ? { gpu: { required: true, perRun: 1 } } : {}),
    };
    if (!starter && evaluate) notes.push('evaluate.py runs in a fresh workspace: list what train.py writes for it (a checkpoint) in run.outputs.');
    return { config, files, ignore: ['/out/', '__pycache__/'], notes, tryCommand: evaluate ? `${python} train.py && ${python} evaluate.py` : `${python} train.py` };
  },
};

/** `uv run` for a uv project, else the python on PATH; the choice and its reason go into `notes`. */
function pythonRunner(repo: string, env: InitEnv, notes: string[]): string {
  const uv = onPath('uv', env.path);
  const project = existsSync(join(repo, 'pyproject.toml'));
  if (uv && project) {
    notes.push(`Python: uv run, because uv is on PATH and pyproject.toml is here.${existsSync(join(repo, '.venv')) ? ' .venv is a run input, so runs use it as it is.' : ' Run `uv sync`, then add ".venv" to run.inputs, so runs need no download.'}`);
    return 'uv run';
  }
  const python = onPath('python3', env.path) || !onPath('python', env.path) ? 'python3' : 'python';
  const why = uv ? 'uv is on PATH, but there is no pyproject.toml for it to run' : project ? 'pyproject.toml is here, but uv is not on PATH' : 'uv is not on PATH';
  notes.push(`Python: ${python}, because ${why}.${onPath(python, env.path) ? '' : ` ${python} is not on PATH either: install Python 3, or change run.command.`}`);
  return python;
}
