// "Did you mean": the candidates closest to a mistyped word (a subcommand, an option, a name from a list).
#pragma once

#include <string>
#include <vector>

namespace tsp {

// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours each cost 1
// ("trian" -> "train" is 1).
int edit_distance(const std::string& a, const std::string& b);

// The candidates close to `word`, best first (at most 3): within 1 edit for words of up to 4 characters,
// within 2 for longer ones, or extending `word` (an abbreviation of at least 3 characters). Empty if none.
std::vector<std::string> closest_names(const std::string& word, const std::vector<std::string>& candidates);

// " (did you mean 'train'?)", " (did you mean '--seq-len' or '--seq-len-start'?)", or "" when nothing is
// close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace tsp
