#include "fit/fit_report.hpp"

#include <cmath>

#include "core/version.hpp"

namespace slitstep {
namespace {

JsonValue strings(const std::vector<std::string>& v) {
  JsonValue a = JsonValue::array();
  for (const auto& s : v) a.push(s);
  return a;
}

const char* sampler_status(SamplerStatus s) {
  switch (s) {
    case SamplerStatus::kOk: return "ok";
    case SamplerStatus::kNotConverged: return "not converged";
    default: return "failed";
  }
}

}  // namespace

JsonValue fit_report_json(const FitReportInput& in) {
  const FitResult& f = *in.fit;
  JsonValue j = JsonValue::object();
  j.set("software", std::string("slitstep ") + kVersion);
  j.set("data", in.data_path);
  j.set("instrument", in.instrument);
  j.set("space", in.space);
  j.set("data_redshift", in.data_redshift);
  j.set("model_redshift", in.model_redshift);
  j.set("status", fit_status_name(f.status));
  j.set("reason", f.reason);
  std::vector<std::string> notes = in.notes;
  notes.insert(notes.end(), f.notes.begin(), f.notes.end());
  j.set("notes", strings(notes));
  j.set("chi2", f.chi2);
  j.set("chi2_start", f.chi2_start);
  j.set("chi2_empty", f.chi2_empty);
  j.set("ndof", static_cast<long long>(f.ndof));
  j.set("reduced_chi2", f.ndof > 0 ? f.chi2 / static_cast<double>(f.ndof) : std::nan(""));
  j.set("n_used", static_cast<long long>(f.n_used));
  j.set("n_model_evaluations", static_cast<long long>(f.n_model_evaluations));
  j.set("iterations", f.iterations);
  j.set("wall_s", f.wall_s);

  // Cramer-Rao bound per free parameter.
  auto crb_of = [&](const std::string& name) {
    if (!in.fisher) return std::nan("");
    for (std::size_t k = 0; k < in.fisher->names.size(); ++k)
      if (in.fisher->names[k] == name && k < in.fisher->crb.size()) return in.fisher->crb[k];
    return std::nan("");
  };
  JsonValue params = JsonValue::object();
  for (const auto& p : f.params) {
    JsonValue o = JsonValue::object();
    o.set("value", p.value);
    o.set("err", p.err);
    o.set("start", p.start);
    o.set("lower", p.lower);
    o.set("upper", p.upper);
    o.set("fixed", p.fixed);
    o.set("at_bound", p.bound == BoundState::kInside ? "" : p.bound == BoundState::kAtLower ? "lower" : "upper");
    o.set("crb", p.fixed ? 0.0 : crb_of(p.name));
    params.set(p.name, std::move(o));
  }
  j.set("params", std::move(params));
  JsonValue derived = JsonValue::object();
  for (const auto& d : f.derived)
    derived.set(d.name, JsonValue::object().set("value", d.value).set("err", d.err).set("note", d.note));
  j.set("derived", std::move(derived));
  j.set("undetermined", strings(f.undetermined));
  JsonValue cov = JsonValue::object();
  cov.set("names", strings(f.free_names));
  JsonValue rows = JsonValue::array();
  for (Eigen::Index r = 0; r < f.covariance.rows(); ++r) {
    JsonValue row = JsonValue::array();
    for (Eigen::Index c = 0; c < f.covariance.cols(); ++c) row.push(f.covariance(r, c));
    rows.push(std::move(row));
  }
  cov.set("matrix", std::move(rows));
  j.set("covariance", std::move(cov));

  JsonValue cr = JsonValue::object();
  if (in.fisher) {
    cr.set("status", in.fisher->status.ok() ? "ok" : "singular");
    cr.set("reason", in.fisher->status.message);
    cr.set("at", "the best fit");
    JsonValue b = JsonValue::object();
    for (std::size_t k = 0; k < in.fisher->names.size() && k < in.fisher->crb.size(); ++k)
      b.set(in.fisher->names[k], in.fisher->crb[k]);
    cr.set("bounds", std::move(b));
    cr.set("undetermined", strings(in.fisher->undetermined));
  } else {
    cr.set("status", "not computed");
    cr.set("reason", "the fit failed before a solution existed");
  }
  j.set("cramer_rao", std::move(cr));
  j.set("start", JsonValue::object().set("sources", strings(in.start_sources)));

  if (in.sample) {
    const SampleResult& s = *in.sample;
    JsonValue o = JsonValue::object();
    o.set("status", sampler_status(s.status));
    o.set("reason", s.reason);
    o.set("notes", strings(s.notes));
    if (in.sampler_options) {
      o.set("walkers", in.sampler_options->walkers);
      o.set("steps", in.sampler_options->steps);
      o.set("burn_in", in.sampler_options->burn_in);
      o.set("thin", in.sampler_options->thin);
      o.set("seed", static_cast<unsigned long long>(in.sampler_options->seed));
    }
    o.set("kept", s.kept);
    o.set("acceptance_fraction", s.acceptance_fraction);
    o.set("max_rhat", s.max_rhat);
    o.set("max_tau", s.max_tau);
    o.set("min_ess", s.min_ess);
    o.set("n_evaluations", static_cast<long long>(s.n_evaluations));
    o.set("wall_s", s.wall_s);
    JsonValue ps = JsonValue::object();
    for (const auto& p : s.params)
      ps.set(p.name, JsonValue::object()
                         .set("median", p.median)
                         .set("p16", p.p16)
                         .set("p84", p.p84)
                         .set("mean", p.mean)
                         .set("std", p.std)
                         .set("rhat", p.rhat)
                         .set("tau", p.tau)
                         .set("ess", p.ess));
    o.set("params", std::move(ps));
    j.set("sampler", std::move(o));
  }
  if (in.cube_noise) j.set("cube_noise", *in.cube_noise);
  if (in.surrogate) j.set("surrogate", *in.surrogate);
  if (!in.lines.empty()) {
    JsonValue a = JsonValue::array();
    for (const auto& l : in.lines) a.push(l);
    j.set("lines", a);
  }
  JsonValue prod = JsonValue::object();
  for (const auto& [k, v] : in.products) prod.set(k, v);
  j.set("products", std::move(prod));
  return j;
}

JsonValue surrogate_json(const ReweightResult& rw, const SampleResult& run, double render_pixel_arcsec) {
  JsonValue sj = JsonValue::object();
  sj.set("render_pixel_arcsec", render_pixel_arcsec);
  if (!rw.status.ok()) return sj.set("status", "failed").set("reason", rw.status.message);
  sj.set("status", "ok")
      .set("samples", rw.n_samples)
      .set("thin", rw.thin)
      .set("ess", rw.ess)
      .set("max_weight", rw.max_weight)
      .set("reliable", rw.reliable)
      .set("exact_evaluations", static_cast<long long>(rw.n_evaluations))
      .set("wall_s", rw.wall_s);
  JsonValue notes = JsonValue::array();
  for (const auto& n : rw.notes) notes.push(n);
  sj.set("notes", notes);
  JsonValue ps = JsonValue::object();
  for (std::size_t k = 0; k < rw.params.size(); ++k) {
    const auto& w = rw.params[k];
    ps.set(w.name, JsonValue::object()
                       .set("median", w.median)
                       .set("p16", w.p16)
                       .set("p84", w.p84)
                       .set("mean", w.mean)
                       .set("std", w.std)
                       .set("surrogate_median", k < run.params.size() ? run.params[k].median : std::nan("")));
  }
  return sj.set("params", ps);
}

}  // namespace slitstep
