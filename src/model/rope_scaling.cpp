#include "model/rope_scaling.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "model/json_fields.h"

namespace tsp {

namespace {

using json_fields::present;
const std::string kWhere = "config.json: rope_scaling";

RopeType parse_type(const std::string& name) {
  if (name == "default") return RopeType::standard;
  if (name == "linear") return RopeType::linear;
  if (name == "dynamic") return RopeType::dynamic;
  if (name == "llama3") return RopeType::llama3;
  if (name == "yarn") return RopeType::yarn;
  throw UsageError(fmt::format(
      "{}: rope_type \"{}\" is not supported (allowed: default, linear, dynamic, llama3, yarn{})", kWhere,
      name, name == "longrope" || name == "su" ? "; LongRoPE (Phi-3) is not implemented" : ""));
}

double require_factor(const nlohmann::json& j) {
  const double f = json_fields::get_number(j, "factor", kWhere);
  TSP_REQUIRE(std::isfinite(f) && f >= 1.0, "{}: factor must be a number >= 1, got {}", kWhere, f);
  return f;
}

std::optional<double> optional_number(const nlohmann::json& j, const char* key) {
  if (!present(j, key)) return std::nullopt;
  return json_fields::get_number(j, key, kWhere);
}

// HF's yarn: get_mscale(scale, mscale) = 0.1 mscale ln(scale) + 1 above scale 1.
double yarn_mscale(double scale, double mscale) {
  return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0;
}

}  // namespace

std::string RopeScaling::type_name() const {
  switch (type) {
    case RopeType::standard:
      return "default";
    case RopeType::linear:
      return "linear";
    case RopeType::dynamic:
      return "dynamic";
    case RopeType::llama3:
      return "llama3";
    case RopeType::yarn:
      return "yarn";
  }
  return "?";
}

RopeScaling RopeScaling::from_json(const nlohmann::json& j) {
  TSP_REQUIRE(j.is_object(), "{} must be an object or null, got {}", kWhere, j.dump());
  // transformers 4.x copies a legacy "type" over "rope_type", 5.x prefers "rope_type": when both are given
  // they must agree, or the two versions would build different models.
  const bool has_rope_type = present(j, "rope_type"), has_type = present(j, "type");
  TSP_REQUIRE(has_rope_type || has_type,
              "{}: missing \"rope_type\" (allowed: default, linear, dynamic, llama3, "
              "yarn), got {}",
              kWhere, j.dump());
  const std::string name = json_fields::get_string(j, has_rope_type ? "rope_type" : "type", kWhere);
  if (has_rope_type && has_type) {
    const std::string legacy = json_fields::get_string(j, "type", kWhere);
    TSP_REQUIRE(legacy == name, "{}: \"rope_type\" is \"{}\" but \"type\" is \"{}\"; give one of them",
                kWhere, name, legacy);
  }
  if (present(j, "partial_rotary_factor")) {
    const double prf = json_fields::get_number(j, "partial_rotary_factor", kWhere);
    TSP_REQUIRE(
        prf == 1.0,
        "{}: partial_rotary_factor {} is not supported (Llama-family attention rotates the whole head: "
        "1.0)",
        kWhere, prf);
  }
  RopeScaling s;
  s.type = parse_type(name);
  switch (s.type) {
    case RopeType::standard:
      break;
    case RopeType::linear:
    case RopeType::dynamic:
      s.factor = require_factor(j);
      break;
    case RopeType::llama3:
      s.factor = require_factor(j);
      s.low_freq_factor = json_fields::get_number(j, "low_freq_factor", kWhere);
      s.high_freq_factor = json_fields::get_number(j, "high_freq_factor", kWhere);
      s.original_max_position_embeddings =
          json_fields::get_int(j, "original_max_position_embeddings", kWhere);
      TSP_REQUIRE(s.low_freq_factor > 0 && s.high_freq_factor > s.low_freq_factor,
                  "{}: llama3 needs 0 < low_freq_factor < high_freq_factor, got {} and {}", kWhere,
                  s.low_freq_factor, s.high_freq_factor);
      TSP_REQUIRE(s.original_max_position_embeddings > 0,
                  "{}: original_max_position_embeddings must be positive, got {}", kWhere,
                  s.original_max_position_embeddings);
      break;
    case RopeType::yarn: {
      s.factor = require_factor(j);
      s.attention_factor = optional_number(j, "attention_factor");
      TSP_REQUIRE(!s.attention_factor || *s.attention_factor > 0,
                  "{}: attention_factor must be positive, got {}", kWhere, s.attention_factor.value_or(0));
      // HF: `get("beta_fast") or 32`, so 0 means the default too.
      const double bf = optional_number(j, "beta_fast").value_or(0),
                   bs = optional_number(j, "beta_slow").value_or(0);
      s.beta_fast = bf != 0 ? bf : 32.0;
      s.beta_slow = bs != 0 ? bs : 1.0;
      TSP_REQUIRE(s.beta_fast > 0 && s.beta_slow > 0,
                  "{}: beta_fast and beta_slow must be positive, got {} and {}", kWhere, s.beta_fast,
                  s.beta_slow);
      s.mscale = optional_number(j, "mscale");
      s.mscale_all_dim = optional_number(j, "mscale_all_dim");
      if (present(j, "original_max_position_embeddings")) {
        s.original_max_position_embeddings =
            json_fields::get_int(j, "original_max_position_embeddings", kWhere);
        TSP_REQUIRE(s.original_max_position_embeddings > 0,
                    "{}: original_max_position_embeddings must be positive, got {}", kWhere,
                    s.original_max_position_embeddings);
      }
      if (present(j, "truncate")) s.truncate = json_fields::get_bool(j, "truncate", kWhere);
      break;
    }
  }
  return s;
}

nlohmann::json RopeScaling::to_json() const {
  if (type == RopeType::standard) return nullptr;
  nlohmann::json j = {{"rope_type", type_name()}, {"factor", factor}};
  if (type == RopeType::llama3) {
    j["low_freq_factor"] = low_freq_factor;
    j["high_freq_factor"] = high_freq_factor;
    j["original_max_position_embeddings"] = original_max_position_embeddings;
  }
  if (type == RopeType::yarn) {
    if (original_max_position_embeddings > 0)
      j["original_max_position_embeddings"] = original_max_position_embeddings;
    if (attention_factor) j["attention_factor"] = *attention_factor;
    j["beta_fast"] = beta_fast;
    j["beta_slow"] = beta_slow;
    if (mscale) j["mscale"] = *mscale;
    if (mscale_all_dim) j["mscale_all_dim"] = *mscale_all_dim;
    j["truncate"] = truncate;
  }
  return j;
}

int64_t RopeScaling::context_length(int64_t max_position_embeddings) const {
  double base = double(max_position_embeddings);
  switch (type) {
    case RopeType::standard:
    case RopeType::llama3:
      return max_position_embeddings;
    case RopeType::linear:
    case RopeType::dynamic:
      break;
    case RopeType::yarn:
      if (original_max_position_embeddings > 0) base = double(original_max_position_embeddings);
      break;
  }
  const double scaled = std::floor(base * factor);
  return std::max(max_position_embeddings, scaled >= 9.2e18 ? INT64_MAX : int64_t(scaled));
}

kernels::RopeTable rope_frequencies(const RopeScaling& s, double rope_theta, int64_t head_dim,
                                    int64_t max_position_embeddings, int64_t seq_len) {
  const int64_t half = head_dim / 2;
  const double dim = double(head_dim);
  auto inv_freq_of = [&](double base) { return kernels::RopeTable::standard(head_dim, base); };
  switch (s.type) {
    case RopeType::standard:
      return inv_freq_of(rope_theta);
    case RopeType::linear: {
      // Interpolating the positions by 1/factor is the same as dividing every frequency by factor.
      kernels::RopeTable t = inv_freq_of(rope_theta);
      for (double& f : t.inv_freq) f /= s.factor;
      return t;
    }
    case RopeType::dynamic: {
      // NTK-aware: a larger base once the sequence outgrows max_position_embeddings (rope_scaling.h).
      TSP_CHECK(head_dim > 2, "dynamic RoPE needs head_dim > 2, got {}", head_dim);
      const double L = double(std::max(seq_len, max_position_embeddings)),
                   M = double(max_position_embeddings);
      const double base = rope_theta * std::pow(s.factor * L / M - (s.factor - 1.0), dim / (dim - 2.0));
      return inv_freq_of(base);
    }
    case RopeType::llama3: {
      // Wavelengths longer than the original context are interpolated by factor, shorter than
      // original/high_freq_factor kept, and the band between blended smoothly.
      kernels::RopeTable t = inv_freq_of(rope_theta);
      const double old_len = double(s.original_max_position_embeddings);
      const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
      for (double& f : t.inv_freq) {
        const double wavelen = 2.0 * M_PI / f;
        if (wavelen > low_wavelen) {
          f = f / s.factor;
        } else if (!(wavelen < high_wavelen)) {
          const double smooth =
              (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
          f = (1.0 - smooth) * f / s.factor + smooth * f;
        }
      }
      return t;
    }
    case RopeType::yarn: {
      const double original =
          double(s.original_max_position_embeddings > 0 ? s.original_max_position_embeddings
                                                        : max_position_embeddings);
      kernels::RopeTable t = inv_freq_of(rope_theta);  // extrapolation: the original frequencies
      if (s.attention_factor) {
        t.attention_factor = *s.attention_factor;
      } else if (s.mscale.value_or(0) != 0 && s.mscale_all_dim.value_or(0) != 0) {
        t.attention_factor = yarn_mscale(s.factor, *s.mscale) / yarn_mscale(s.factor, *s.mscale_all_dim);
      } else {
        t.attention_factor = yarn_mscale(s.factor, 1.0);
      }
      // The dimension whose wavelength makes `rotations` turns over the original context.
      auto correction_dim = [&](double rotations) {
        return dim * std::log(original / (rotations * 2.0 * M_PI)) / (2.0 * std::log(rope_theta));
      };
      double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
      if (s.truncate) {
        low = std::floor(low);
        high = std::ceil(high);
      }
      low = std::max(low, 0.0);
      high = std::min(high, dim - 1.0);
      if (low == high) high += 0.001;  // HF: prevent a singular ramp
      for (int64_t i = 0; i < half; ++i) {
        const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
        const double extrapolation = 1.0 - ramp;  // weight of the original frequency
        const double f = t.inv_freq[size_t(i)];
        t.inv_freq[size_t(i)] = (f / s.factor) * (1.0 - extrapolation) + f * extrapolation;
      }
      return t;
    }
  }
  TSP_CHECK(false, "rope_frequencies: unknown rope type");
  return {};
}

}  // namespace tsp
