#pragma once
// slitstep/sim: reading a scene (galaxy + render options + sky frame + cosmology + seed) from a
// TOML config, writing its truth.json, and describing a model as text.
//
// Sections and keys (every key optional over the defaults of GalaxyParams, RenderOptions,
// SkyFrame, CosmologyParams; docs/sim.md lists them all):
//   seed = 1
//   [galaxy]        GalaxyParams fields by name (redshift, re_arcsec, inclination_deg, ...)
//   [[galaxy.clumps]]  x_arcsec, y_arcsec, sigma_arcsec, halpha_flux_cgs, dz_dex
//   [galaxy.agn]    enabled, sigma_arcsec, halpha_flux_cgs, sigma_kms, log_nii_halpha,
//                   log_oiii_hbeta, log_sii_halpha
//   [render]        pixel_arcsec, fov_x_arcsec, fov_y_arcsec, channel_kms, n_sigma,
//                   window_padding_kms, window_half_width_kms, lines ("all" or a comma-separated
//                   list of line names: "halpha,nii6584"), continuum_windows,
//                   continuum_window_half_A, threads
//   [sky]           ra_deg, dec_deg, aperture_pa_deg
//   [cosmology]     h0_kms_mpc, omega_m
// read_scene_config() does NOT call Config::check_all_used(): the application does that after
// every module has read its sections. Every impossible value (also cross-field rules, e.g.
// inclination_deg together with axis_ratio) throws InputError "FILE:LINE: section.key = value:
// rule" through Section::fail.
#include <cstdint>
#include <string>

#include "core/config.hpp"
#include "core/cosmology.hpp"
#include "core/json.hpp"
#include "core/wcs.hpp"
#include "sim/galaxy.hpp"
#include "sim/render.hpp"

namespace slitstep {

struct SceneConfig {
  GalaxyParams galaxy;
  RenderOptions render;
  SkyFrame sky;
  CosmologyParams cosmology;
  std::uint64_t seed = 1;
};

SceneConfig read_scene_config(const Config& config);

/// truth.json: the galaxy's parameters under their config names (resolved inclination and axis
/// ratio), seed, objects "sky", "cosmology", "render", "clumps", "agn", and "derived" values
/// (kpc_per_arcsec, re_kpc, gradient_dex_per_re, model line fluxes, ...).
JsonValue truth_json(const SceneConfig& scene, const GalaxyModel& model);

/// A short aligned text table of the model's properties (returned, never printed).
std::string describe_model(const GalaxyModel& model);

}  // namespace slitstep
