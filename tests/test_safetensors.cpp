// safetensors: round trips, half-precision decoding and rounding, block reads, corrupt files, atomic writes.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/check.h"
#include "model/safetensors.h"

namespace fs = std::filesystem;
using tsp::DType;
using tsp::SafetensorsReader;
using tsp::SafetensorsWriter;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ =
        fs::temp_directory_path() / ("tsp_test_safetensors_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }

  // Writes a file byte by byte: the 8-byte length (the real one unless overridden), the header, the data.
  std::string craft(const std::string& name, const std::string& header,
                    const std::vector<unsigned char>& data, uint64_t header_len_override = 0) {
    const std::string path = file(name);
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = header_len_override ? header_len_override : header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(header.data(), std::streamsize(header.size()));
    out.write(reinterpret_cast<const char*>(data.data()), std::streamsize(data.size()));
    return path;
  }

  static std::vector<unsigned char> read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  // The raw stored 16-bit words of tensor `name`.
  static std::vector<uint16_t> raw_u16(const std::string& path, const std::string& name) {
    const std::vector<unsigned char> bytes = read_bytes(path);
    uint64_t n = 0;
    std::memcpy(&n, bytes.data(), 8);
    SafetensorsReader r(path);
    const tsp::TensorInfo& t = r.info(name);
    std::vector<uint16_t> out(size_t(t.end - t.begin) / 2);
    std::memcpy(out.data(), bytes.data() + 8 + n + t.begin, t.end - t.begin);
    return out;
  }

  // The Error message `f` throws ("" if none).
  template <class F>
  static std::string error_of(F&& f) {
    try {
      f();
    } catch (const tsp::Error& e) {
      return e.what();
    }
    return "";
  }

  fs::path dir_;
};

std::vector<unsigned char> u16_bytes(const std::vector<uint16_t>& words) {
  std::vector<unsigned char> out(words.size() * 2);
  std::memcpy(out.data(), words.data(), out.size());
  return out;
}

bool same_bits(float a, float b) {
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

}  // namespace

TEST_F(Safetensors, RoundTripF32AndF64) {
  const std::string path = file("model.safetensors");
  std::mt19937 rng(7);
  std::normal_distribution<double> nd;
  std::vector<float> a(3 * 5), s(1);
  std::vector<double> b(2 * 3 * 4), v(7);
  for (auto& x : a) x = float(nd(rng));
  for (auto& x : b) x = nd(rng);
  for (auto& x : v) x = nd(rng);
  s[0] = 3.25f;
  {
    SafetensorsWriter w(path);
    w.set_metadata("format", "pt");
    w.set_metadata("step", "42");
    w.declare("a", DType::F32, {3, 5});
    w.declare("b", DType::F64, {2, 3, 4});
    w.declare("scalar", DType::F32, {});
    w.declare("empty", DType::F32, {0, 4});
    w.declare("v", DType::F64, {7});
    w.write("a", a.data(), int64_t(a.size()));
    w.write("b", b.data(), int64_t(b.size()));
    w.write("scalar", s.data(), 1);
    w.write("empty", a.data(), 0);
    w.write("v", v.data(), int64_t(v.size()));
    w.finish();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  // The data section starts 8-byte aligned.
  const std::vector<unsigned char> bytes = read_bytes(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);

  SafetensorsReader r(path);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"a", "b", "empty", "scalar", "v"}));
  EXPECT_EQ(r.metadata().at("format"), "pt");
  EXPECT_EQ(r.metadata().at("step"), "42");
  EXPECT_TRUE(r.has("a"));
  EXPECT_FALSE(r.has("c"));
  EXPECT_EQ(r.info("b").dtype, DType::F64);
  EXPECT_EQ(r.info("b").shape, (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(r.info("b").numel(), 24);

  std::vector<float> a2(a.size());
  r.read("a", {3, 5}, a2.data());
  EXPECT_EQ(a2, a);
  std::vector<double> b2(b.size());
  r.read("b", {2, 3, 4}, b2.data());
  EXPECT_EQ(b2, b);
  std::vector<double> v2(v.size());
  r.read("v", {7}, v2.data());
  EXPECT_EQ(v2, v);
  float s2 = 0;
  r.read("scalar", {}, &s2);
  EXPECT_EQ(s2, 3.25f);
  r.read("empty", {0, 4}, a2.data());

  // Cross-precision reads convert.
  std::vector<double> a_as_double(a.size());
  r.read("a", {3, 5}, a_as_double.data());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a_as_double[i], double(a[i]));
  std::vector<float> b_as_float(b.size());
  r.read("b", {2, 3, 4}, b_as_float.data());
  for (size_t i = 0; i < b.size(); ++i) EXPECT_EQ(b_as_float[i], float(b[i]));
}

TEST_F(Safetensors, LargeTensorsCrossChunkBoundaries) {
  const std::string path = file("big.safetensors");
  const int64_t rows = 700, cols = 1000;  // 2.8 MB in F32, 5.6 MB in F64: several 1 MiB chunks
  std::vector<float> x(size_t(rows * cols));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(i) * 0.5f;
  {
    SafetensorsWriter w(path);
    w.declare("x32", DType::F32, {rows, cols});
    w.declare("x64", DType::F64, {rows, cols});
    w.declare("x16", DType::BF16, {rows, cols});
    w.write("x32", x.data(), rows * cols);
    w.write("x64", x.data(), rows * cols);
    w.write("x16", x.data(), rows * cols);
    w.finish();
  }
  SafetensorsReader r(path);
  std::vector<float> y(x.size());
  r.read("x32", {rows, cols}, y.data());
  EXPECT_EQ(y, x);
  std::vector<double> yd(x.size());
  r.read("x64", {rows, cols}, yd.data());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(yd[i], double(x[i])) << i;
  // A column block spanning every row.
  std::vector<float> blk(size_t(rows) * 3);
  r.read_block("x32", {rows, cols}, 0, rows, 997, 3, blk.data());
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < 3; ++j) ASSERT_EQ(blk[size_t(i * 3 + j)], x[size_t(i * cols + 997 + j)]);
  }
  r.read("x16", {rows, cols}, y.data());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_LE(std::abs(y[i] - x[i]), std::abs(x[i]) * (1.0f / 256)) << i;
}

TEST_F(Safetensors, DecodesHandWrittenBF16) {
  // BF16 is the upper half of an f32.
  const std::vector<uint16_t> words = {0x3F80, 0xC000, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x3EAB, 0x7FC0};
  const std::string header =
      R"({"w":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,16]},"__metadata__":{"format":"pt"}})";
  const std::string path = craft("bf16.safetensors", header, u16_bytes(words));
  SafetensorsReader r(path);
  std::vector<float> out(8);
  r.read("w", {2, 4}, out.data());
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_EQ(out[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(out[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(out[4], std::bit_cast<float>(uint32_t{0x00010000}));  // a subnormal, 2^-133
  EXPECT_TRUE(same_bits(out[5], -0.0f));
  EXPECT_EQ(out[6], std::bit_cast<float>(uint32_t{0x3EAB0000}));  // 0.333984375
  EXPECT_TRUE(std::isnan(out[7]));
  std::vector<double> outd(8);
  r.read("w", {2, 4}, outd.data());
  EXPECT_EQ(outd[6], 0.333984375);
}

TEST_F(Safetensors, DecodesHandWrittenF16) {
  const std::vector<uint16_t> words = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x03FF, 0x0400,
                                       0x7C00, 0xFC00, 0x7E00, 0x8000, 0x3555, 0x8001};
  const std::string header = R"({"h":{"dtype":"F16","shape":[12],"data_offsets":[0,24]}})";
  const std::string path = craft("f16.safetensors", header, u16_bytes(words));
  SafetensorsReader r(path);
  std::vector<double> out(12);
  r.read("h", {12}, out.data());
  EXPECT_EQ(out[0], 1.0);
  EXPECT_EQ(out[1], -2.0);
  EXPECT_EQ(out[2], 65504.0);               // largest half
  EXPECT_EQ(out[3], std::ldexp(1.0, -24));  // smallest subnormal
  EXPECT_EQ(out[4], 1023 * std::ldexp(1.0, -24));
  EXPECT_EQ(out[5], std::ldexp(1.0, -14));  // smallest normal
  EXPECT_EQ(out[6], std::numeric_limits<double>::infinity());
  EXPECT_EQ(out[7], -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(out[8]));
  EXPECT_EQ(out[9], 0.0);
  EXPECT_TRUE(std::signbit(out[9]));
  EXPECT_EQ(out[10], 0.333251953125);
  EXPECT_EQ(out[11], -std::ldexp(1.0, -24));
}

TEST_F(Safetensors, WritesBF16RoundToNearestEven) {
  const std::string path = file("bf16w.safetensors");
  const float ulp = std::ldexp(1.0f, -7);  // bf16 spacing in [1, 2)
  const std::vector<float> f = {1.0f,
                                1.0f + ulp / 2,      // tie, 1.0 is even: down
                                1.0f + 3 * ulp / 2,  // tie, 1 + ulp is odd: up to 1 + 2 ulp
                                1.0f + ulp / 2 + std::ldexp(1.0f, -20),  // above the tie: up
                                -2.0f,
                                std::numeric_limits<float>::infinity(),
                                std::numeric_limits<float>::quiet_NaN(),
                                3.4e38f,  // above the largest bf16 + half a spacing: inf
                                -0.0f};
  // 1 + 2^-8 + 2^-40 is above the tie, but rounding it to f32 first would land exactly on the tie and then
  // round down: the double path must round once.
  const std::vector<double> d = {1.0 + std::ldexp(1.0, -8) + std::ldexp(1.0, -40), 1.0 + std::ldexp(1.0, -8),
                                 std::ldexp(1.0, -133), std::ldexp(1.0, -134), 1e300};
  {
    SafetensorsWriter w(path);
    w.declare("f", DType::BF16, {int64_t(f.size())});
    w.declare("d", DType::BF16, {int64_t(d.size())});
    w.write("f", f.data(), int64_t(f.size()));
    w.write("d", d.data(), int64_t(d.size()));
    w.finish();
  }
  const std::vector<uint16_t> fw = raw_u16(path, "f");
  EXPECT_EQ(fw[0], 0x3F80);
  EXPECT_EQ(fw[1], 0x3F80);
  EXPECT_EQ(fw[2], 0x3F82);
  EXPECT_EQ(fw[3], 0x3F81);
  EXPECT_EQ(fw[4], 0xC000);
  EXPECT_EQ(fw[5], 0x7F80);
  EXPECT_EQ(fw[6] & 0x7F80, 0x7F80);
  EXPECT_NE(fw[6] & 0x007F, 0);  // still a NaN, not inf
  EXPECT_EQ(fw[7], 0x7F80);
  EXPECT_EQ(fw[8], 0x8000);
  const std::vector<uint16_t> dw = raw_u16(path, "d");
  EXPECT_EQ(dw[0], 0x3F81);
  EXPECT_EQ(dw[1], 0x3F80);
  EXPECT_EQ(dw[2], 0x0001);  // smallest subnormal
  EXPECT_EQ(dw[3], 0x0000);  // half of it: tie to even zero
  EXPECT_EQ(dw[4], 0x7F80);
}

TEST_F(Safetensors, WritesF16RoundToNearestEven) {
  const std::string path = file("f16w.safetensors");
  const std::vector<float> f = {1.0f,
                                1.0f + std::ldexp(1.0f, -11),      // tie: down to even 1.0
                                1.0f + 3 * std::ldexp(1.0f, -11),  // tie: up to 0x3C02
                                65504.0f,
                                65519.0f,  // below the overflow tie
                                65520.0f,  // the tie above the largest half, which is odd: inf
                                std::ldexp(1.0f, -24),
                                std::ldexp(1.0f, -25),      // tie between 0 and the smallest subnormal: 0
                                3 * std::ldexp(1.0f, -25),  // tie between 1 and 2 subnormal units: 2
                                std::ldexp(1.0f, -14) - std::ldexp(1.0f, -25),  // rounds up into the normals
                                1e-10f,
                                -0.0f,
                                std::numeric_limits<float>::quiet_NaN(),
                                -std::numeric_limits<float>::infinity(),
                                0.333333333f};
  const std::vector<uint16_t> expect = {0x3C00, 0x3C00, 0x3C02, 0x7BFF, 0x7BFF, 0x7C00, 0x0001, 0x0000,
                                        0x0002, 0x0400, 0x0000, 0x8000, 0x7E00, 0xFC00, 0x3555};
  {
    SafetensorsWriter w(path);
    w.declare("f", DType::F16, {int64_t(f.size())});
    w.declare("d", DType::F16, {int64_t(f.size())});
    w.write("f", f.data(), int64_t(f.size()));
    std::vector<double> d(f.begin(), f.end());
    w.write("d", d.data(), int64_t(d.size()));
    w.finish();
  }
  EXPECT_EQ(raw_u16(path, "f"), expect);
  EXPECT_EQ(raw_u16(path, "d"), expect);
  // Every finite half survives a decode/encode round trip bit for bit.
  std::vector<uint16_t> all;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) != 0x7C00) all.push_back(uint16_t(h));
  }
  const std::string src = craft("allf16.safetensors",
                                R"({"h":{"dtype":"F16","shape":[)" + std::to_string(all.size()) +
                                    R"(],"data_offsets":[0,)" + std::to_string(all.size() * 2) + "]}}",
                                u16_bytes(all));
  std::vector<float> vals(all.size());
  SafetensorsReader(src).read("h", {int64_t(all.size())}, vals.data());
  const std::string back = file("allf16b.safetensors");
  {
    SafetensorsWriter w(back);
    w.declare("h", DType::F16, {int64_t(all.size())});
    w.write("h", vals.data(), int64_t(vals.size()));
    w.finish();
  }
  EXPECT_EQ(raw_u16(back, "h"), all);
}

TEST_F(Safetensors, ReadBlockRowsAndColumns) {
  const std::string path = file("blocks.safetensors");
  const int64_t R = 7, C = 5;
  std::vector<double> m(size_t(R * C));
  for (int64_t r = 0; r < R; ++r) {
    for (int64_t c = 0; c < C; ++c) m[size_t(r * C + c)] = double(r * 10 + c);
  }
  std::vector<float> vec(9);
  for (int i = 0; i < 9; ++i) vec[size_t(i)] = float(i) + 0.5f;
  {
    SafetensorsWriter w(path);
    w.declare("m", DType::F64, {R, C});
    w.declare("m16", DType::BF16, {R, C});  // small integers are exact in bf16
    w.declare("vec", DType::F32, {9});
    w.write("m", m.data(), R * C);
    w.write("m16", m.data(), R * C);
    w.write("vec", vec.data(), 9);
    w.finish();
  }
  SafetensorsReader r(path);
  for (const std::string name : {"m", "m16"}) {
    SCOPED_TRACE(name);
    std::vector<float> rows(3 * C);  // rows [2, 5)
    r.read_block(name, {R, C}, 2, 3, 0, C, rows.data());
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t c = 0; c < C; ++c) EXPECT_EQ(rows[size_t(i * C + c)], float((2 + i) * 10 + c));
    }
    std::vector<double> cols(4 * 3);  // rows [3, 7) x cols [1, 4)
    r.read_block(name, {R, C}, 3, 4, 1, 3, cols.data());
    for (int64_t i = 0; i < 4; ++i) {
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(cols[size_t(i * 3 + c)], double((3 + i) * 10 + 1 + c));
    }
    double one = 0;
    r.read_block(name, {R, C}, 6, 1, 4, 1, &one);
    EXPECT_EQ(one, 64.0);
  }
  std::vector<float> part(4);
  r.read_block("vec", {9}, 0, 1, 2, 4, part.data());
  EXPECT_EQ(part, (std::vector<float>{2.5f, 3.5f, 4.5f, 5.5f}));

  std::vector<float> sink(64);
  EXPECT_CONTAINS(error_of([&] { r.read_block("m", {R, C}, 5, 3, 0, C, sink.data()); }), "outside");
  EXPECT_CONTAINS(error_of([&] { r.read_block("m", {R, C}, 0, 1, 3, 3, sink.data()); }), "outside");
  EXPECT_CONTAINS(error_of([&] { r.read_block("vec", {9}, 1, 1, 0, 1, sink.data()); }), "outside");
  EXPECT_CONTAINS(error_of([&] { r.read_block("m", {C, R}, 0, 1, 0, 1, sink.data()); }), "[7, 5]");
}

TEST_F(Safetensors, MissingTensorAndShapeMismatchAreNamed) {
  const std::string path = file("m.safetensors");
  std::vector<float> x(4, 1.0f);
  {
    SafetensorsWriter w(path);
    w.declare("layers.0.weight", DType::F32, {2, 2});
    w.write("layers.0.weight", x.data(), 4);
    w.finish();
  }
  SafetensorsReader r(path);
  std::string msg = error_of([&] { r.info("layers.1.weight"); });
  EXPECT_CONTAINS(msg, "layers.1.weight");
  EXPECT_CONTAINS(msg, path);
  msg = error_of([&] { r.read("layers.0.weight", {3, 3}, x.data()); });
  EXPECT_CONTAINS(msg, "layers.0.weight");
  EXPECT_CONTAINS(msg, "[2, 2]");
  EXPECT_CONTAINS(msg, "[3, 3]");
  msg = error_of([&] { r.read("layers.0.weight", {4}, x.data()); });
  EXPECT_CONTAINS(msg, "[4]");
}

TEST_F(Safetensors, CorruptFilesAreRejected) {
  const std::string good_header = R"({"wq":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  const std::vector<unsigned char> data(16, 0);

  // Truncated data: the tensor extends past the end of the file.
  std::string p = craft("trunc.safetensors", good_header, std::vector<unsigned char>(10, 0));
  std::string msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_CONTAINS(msg, "wq");
  EXPECT_CONTAINS(msg, "truncated");
  EXPECT_CONTAINS(msg, p);

  // Shorter than the length field itself.
  p = file("tiny.safetensors");
  std::ofstream(p, std::ios::binary) << "abc";
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "too short");

  // Header length beyond the file.
  p = craft("hlen.safetensors", good_header, data, 1u << 20);
  msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_CONTAINS(msg, "header length");
  EXPECT_CONTAINS(msg, p);

  // Invalid JSON.
  p = craft("json.safetensors", R"({"wq":{"dtype":"F32",)", data);
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "not valid JSON");

  // Offsets that do not match shape * dtype size.
  p = craft("offs.safetensors", R"({"wq":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", data);
  msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_CONTAINS(msg, "wq");
  EXPECT_CONTAINS(msg, "16 bytes");

  // Offsets ending before they begin.
  p = craft("rev.safetensors", R"({"wq":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", data);
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "wq");

  // Overlapping tensors.
  p = craft("overlap.safetensors",
            R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],)"
            R"("data_offsets":[8,16]}})",
            data);
  msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_CONTAINS(msg, "overlaps");
  EXPECT_CONTAINS(msg, "'a'");
  EXPECT_CONTAINS(msg, "'b'");

  // Unknown dtype.
  p = craft("dtype.safetensors", R"({"wq":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}})", data);
  msg = error_of([&] { SafetensorsReader r(p); });
  EXPECT_CONTAINS(msg, "wq");
  EXPECT_CONTAINS(msg, "unknown dtype");
  EXPECT_CONTAINS(msg, "I32");

  // Malformed entries.
  p = craft("shape.safetensors", R"({"wq":{"dtype":"F32","shape":[-2,2],"data_offsets":[0,16]}})", data);
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "shape");
  p = craft("noofs.safetensors", R"({"wq":{"dtype":"F32","shape":[2,2]}})", data);
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "data_offsets");
  p = craft("meta.safetensors", R"({"__metadata__":{"step":3}})", data);
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "__metadata__");
  p = craft("array.safetensors", R"([1,2])", data);
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), "object");

  // Missing file.
  p = file("absent.safetensors");
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p); }), p);

  // And the well-formed original loads.
  p = craft("good.safetensors", good_header, data);
  EXPECT_NO_THROW(SafetensorsReader r(p));
}

TEST_F(Safetensors, UnfinishedWriterLeavesNothing) {
  const std::string path = file("ckpt.safetensors");
  std::vector<float> x(8, 2.0f);
  {
    SafetensorsWriter w(path);
    w.declare("a", DType::F32, {8});
    w.declare("b", DType::F32, {8});
    w.write("a", x.data(), 8);
    EXPECT_TRUE(fs::exists(path + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  // Misuse throws, and the writer still cleans up.
  {
    SafetensorsWriter w(path);
    w.declare("a", DType::F32, {8});
    w.declare("b", DType::F32, {8});
    w.declare("c", DType::F32, {8});
    w.write("b", x.data(), 8);  // tensors may come in any order
    EXPECT_CONTAINS(error_of([&] { w.write("b", x.data(), 8); }), "already written");
    EXPECT_CONTAINS(error_of([&] { w.write("a", x.data(), 7); }), "8 elements");
    EXPECT_CONTAINS(error_of([&] { w.write("d", x.data(), 8); }), "not declared");
    w.write("a", x.data(), 8);
    EXPECT_CONTAINS(error_of([&] { w.finish(); }), "'c'");
    EXPECT_CONTAINS(error_of([&] { w.declare("c", DType::F32, {1}); }), "after tensor data began");
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));

  SafetensorsWriter w(path);
  w.declare("a", DType::F32, {8});
  EXPECT_CONTAINS(error_of([&] { w.declare("a", DType::F32, {8}); }), "twice");
}

TEST_F(Safetensors, ExistingFileIsReplacedAtomically) {
  const std::string path = file("ckpt.safetensors");
  std::vector<float> old_v(4, 1.0f), new_v(6, 2.0f);
  {
    SafetensorsWriter w(path);
    w.declare("x", DType::F32, {4});
    w.write("x", old_v.data(), 4);
    w.finish();
  }
  SafetensorsReader old_reader(path);
  {
    SafetensorsWriter w(path);
    w.declare("x", DType::F32, {6});
    w.write("x", new_v.data(), 6);
    // Until finish(), the old checkpoint is intact at `path`.
    SafetensorsReader during(path);
    EXPECT_EQ(during.info("x").shape, (std::vector<int64_t>{4}));
    w.finish();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  SafetensorsReader r(path);
  std::vector<float> got(6);
  r.read("x", {6}, got.data());
  EXPECT_EQ(got, new_v);
  // A reader that opened the old file keeps reading the old contents (rename, not overwrite in place).
  std::vector<float> old_got(4);
  old_reader.read("x", {4}, old_got.data());
  EXPECT_EQ(old_got, old_v);

  // A writer abandoned over an existing file leaves it untouched.
  {
    SafetensorsWriter w(path);
    w.declare("x", DType::F32, {6});
  }
  SafetensorsReader again(path);
  EXPECT_EQ(again.info("x").shape, (std::vector<int64_t>{6}));
}

TEST_F(Safetensors, DTypeNamesAndSizes) {
  EXPECT_EQ(tsp::dtype_name(DType::F32), "F32");
  EXPECT_EQ(tsp::dtype_name(DType::F64), "F64");
  EXPECT_EQ(tsp::dtype_name(DType::F16), "F16");
  EXPECT_EQ(tsp::dtype_name(DType::BF16), "BF16");
  EXPECT_EQ(tsp::dtype_size(DType::F32), 4);
  EXPECT_EQ(tsp::dtype_size(DType::F64), 8);
  EXPECT_EQ(tsp::dtype_size(DType::F16), 2);
  EXPECT_EQ(tsp::dtype_size(DType::BF16), 2);
}
