// The presets `ratchet init` knows, by name: one file each.
import { benchPreset } from './bench.js';
import { PRESET_NAMES, type Preset, type PresetName } from './plan.js';
import { skillPreset } from './skill.js';
import { trainPreset } from './train.js';

export const PRESETS: Record<PresetName, Preset> = { skill: skillPreset, train: trainPreset, bench: benchPreset };

export function isPresetName(name: string): name is PresetName {
  return (PRESET_NAMES as readonly string[]).includes(name);
}
