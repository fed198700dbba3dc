// "Did you mean": the CLI's suggestions for mistyped commands and options (core/suggest.h).
#include <gtest/gtest.h>

#include "core/suggest.h"

namespace tsp {
namespace {

const std::vector<std::string> kCommands = {"train", "eval", "generate", "check", "plan", "bench", "help"};

TEST(Suggest, EditDistanceCountsASwapOnce) {
  EXPECT_EQ(edit_distance("trian", "train"), 1);
  EXPECT_EQ(edit_distance("step", "steps"), 1);
  EXPECT_EQ(edit_distance("plan", "plan"), 0);
  EXPECT_EQ(edit_distance("", "abc"), 3);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3);
}

TEST(Suggest, MistypedCommandsAndOptions) {
  EXPECT_EQ(did_you_mean("trian", kCommands), " (did you mean 'train'?)");
  EXPECT_EQ(did_you_mean("bnech", kCommands), " (did you mean 'bench'?)");
  EXPECT_EQ(did_you_mean("xyzzy", kCommands), "");
  const std::vector<std::string> opts = {"--steps", "--seq-len", "--seq-len-start", "--seed", "--save-every"};
  EXPECT_EQ(did_you_mean("--step", opts), " (did you mean '--steps'?)");
  EXPECT_EQ(closest_names("--seq", opts), (std::vector<std::string>{"--seq-len", "--seq-len-start"}));
  EXPECT_TRUE(closest_names("--steps", opts).empty());  // the word itself is not a suggestion
  EXPECT_TRUE(closest_names("--", opts).empty());
}

}  // namespace
}  // namespace tsp
