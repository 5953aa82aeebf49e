// LineEditor: how the interactive shell reads its command lines. On a
// terminal it is libedit (editline): Emacs-style editing (arrows, Home/End,
// Ctrl-A/E/K/W), history recalled with Up/Down and kept in a file between
// runs, Tab completion through a callback, and Ctrl-C at the prompt clearing
// the line (the terminal's interrupt character reaches the editor as a key
// while a line is being edited, and is a signal again while a command runs).
// Anywhere else (a pipe, a file) it reads plain lines, as a script expects:
// the prompt is printed as is and nothing is echoed or kept.
//
// Not thread-safe: one shell thread reads lines.
#ifndef PCFS_PEERCTL_LINE_EDITOR_H_
#define PCFS_PEERCTL_LINE_EDITOR_H_

#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace pcfs {

class LineEditor {
 public:
  // Given the line up to the cursor, returns the candidates for the word
  // being typed and sets `*word_start` to where that word starts in it.
  using Completer = std::function<std::vector<std::string>(
      absl::string_view before_cursor, size_t* word_start)>;

  // A line editor over `in` and `out`: libedit when both are terminals,
  // plain lines otherwise. `history_path` (empty: none) is loaded now and
  // written after each line entered, mode 0600, its folder made if missing.
  static std::unique_ptr<LineEditor> Create(std::FILE* in, std::FILE* out,
                                            std::FILE* err,
                                            std::string history_path,
                                            Completer completer);
  virtual ~LineEditor() = default;

  // Shows `prompt` and reads one line, without its line end. False at the
  // end of input with nothing read.
  virtual bool ReadLine(absl::string_view prompt, std::string* line) = 0;
  // Remembers `line` in the history (and its file); no-op without one.
  virtual void AddHistory(absl::string_view line) = 0;
  // True if lines come from a terminal through libedit.
  virtual bool interactive() const = 0;
};

// Where the shell keeps its history: $XDG_STATE_HOME/peerconnect/history,
// else $HOME/.local/state/peerconnect/history; empty if neither is set.
std::string DefaultHistoryPath();

// Reads one line from `in` without its "\n" (and a "\r" before it). False at
// end of input with nothing read.
bool ReadPlainLine(std::FILE* in, std::string* line);

}  // namespace pcfs

#endif  // PCFS_PEERCTL_LINE_EDITOR_H_
