#include "peerctl/line_editor.h"

#include <histedit.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "peerctl/state_folder.h"

namespace pcfs {
namespace {

// Reads plain lines: the shell's input is a pipe or a file.
class PlainEditor : public LineEditor {
 public:
  PlainEditor(std::FILE* in, std::FILE* out) : in_(in), out_(out) {}

  bool ReadLine(absl::string_view prompt, std::string* line) override {
    std::fwrite(prompt.data(), 1, prompt.size(), out_);
    std::fflush(out_);
    return ReadPlainLine(in_, line);
  }
  void AddHistory(absl::string_view) override {}
  bool interactive() const override { return false; }

 private:
  std::FILE* const in_;
  std::FILE* const out_;
};

// The longest prefix all of `words` share.
std::string CommonPrefix(const std::vector<std::string>& words) {
  std::string prefix = words.front();
  for (const std::string& word : words) {
    size_t n = 0;
    while (n < prefix.size() && n < word.size() && prefix[n] == word[n]) ++n;
    prefix.resize(n);
  }
  return prefix;
}

// Makes the folders of `path` that are missing, mode 0700 (the history
// says what the user typed).
void MakeParents(const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    const std::string folder = path.substr(0, slash);
    if (::mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) return;
  }
}

// True if the terminal `fd`, in its line mode, holds a Ctrl-D typed on an
// empty line while no line was being read (during a command, or the wait
// after the login), and takes it. The terminal keeps it as an end of input
// of its own: readable, with no byte before it (FIONREAD counts none), read
// as 0 bytes. libedit's raw mode would drop it: the shell would wait at the
// prompt for the Ctrl-D the user already typed.
bool TakeEndOfInputTyped(int fd) {
  termios mode{};
  if (::tcgetattr(fd, &mode) != 0 || (mode.c_lflag & ICANON) == 0) {
    return false;
  }
  pollfd ready{.fd = fd, .events = POLLIN, .revents = 0};
  if (::poll(&ready, 1, 0) != 1 || (ready.revents & POLLIN) == 0) {
    return false;
  }
  int queued = 0;
  if (::ioctl(fd, FIONREAD, &queued) != 0 || queued != 0) return false;
  char byte;
  return ::read(fd, &byte, 1) == 0;
}

class EditlineEditor : public LineEditor {
 public:
  EditlineEditor(std::FILE* in, std::FILE* out, std::FILE* err,
                 std::string history_path, Completer completer)
      : in_fd_(::fileno(in)),
        out_(out),
        history_path_(std::move(history_path)),
        completer_(std::move(completer)) {
    history_ = ::history_init();
    HistEvent event;
    ::history(history_, &event, H_SETSIZE, 1000);
    ::history(history_, &event, H_SETUNIQUE, 1);
    if (!history_path_.empty()) {
      ::history(history_, &event, H_LOAD, history_path_.c_str());
    }
    editor_ = ::el_init("peerctl", in, out, err);
    ::el_set(editor_, EL_CLIENTDATA, this);
    ::el_set(editor_, EL_EDITOR, "emacs");
    ::el_set(editor_, EL_HIST, ::history, history_);
    ::el_set(editor_, EL_PROMPT, &EditlineEditor::Prompt);
    // Ctrl-C while editing: a key that clears the line, not a signal (the
    // shell's SIGINT handler would otherwise see it, meant for a `get`).
    const char* no_signals[] = {"setty", "-d", "-isig", nullptr};
    ::el_parse(editor_, 3, no_signals);
    // The wide call with static strings: libedit keeps the name and help
    // pointers of an added function for the editor's life and never frees
    // them, so the narrow el_set, which hands it wide copies made with
    // wcsdup, leaks those copies (LeakSanitizer reports them at exit).
    ::el_wset(editor_, EL_ADDFN, L"pcfs-complete", L"complete a word",
              &EditlineEditor::Complete);
    ::el_set(editor_, EL_BIND, "^I", "pcfs-complete", nullptr);
    ::el_wset(editor_, EL_ADDFN, L"pcfs-clear", L"clear the line",
              &EditlineEditor::Clear);
    ::el_set(editor_, EL_BIND, "^C", "pcfs-clear", nullptr);
    // ~/.editrc and the like, as every libedit program reads them.
    ::el_source(editor_, nullptr);
  }
  ~EditlineEditor() override {
    ::el_end(editor_);
    ::history_end(history_);
  }

  bool ReadLine(absl::string_view prompt, std::string* line) override {
    prompt_ = std::string(prompt);
    if (TakeEndOfInputTyped(in_fd_)) {
      // As if typed at this prompt: shown, and the end of input.
      std::fwrite(prompt.data(), 1, prompt.size(), out_);
      std::fflush(out_);
      return false;
    }
    int count = 0;
    const char* text = ::el_gets(editor_, &count);
    if (text == nullptr || count <= 0) return false;
    line->assign(text, static_cast<size_t>(count));
    while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) {
      line->pop_back();
    }
    return true;
  }

  void AddHistory(absl::string_view line) override {
    if (line.empty()) return;
    HistEvent event;
    ::history(history_, &event, H_ENTER, std::string(line).c_str());
    if (history_path_.empty()) return;
    MakeParents(history_path_);
    const mode_t old_mask = ::umask(077);
    ::history(history_, &event, H_SAVE, history_path_.c_str());
    ::umask(old_mask);
  }

  bool interactive() const override { return true; }

 private:
  static EditlineEditor* Self(EditLine* editor) {
    void* self = nullptr;
    ::el_get(editor, EL_CLIENTDATA, &self);
    return static_cast<EditlineEditor*>(self);
  }
  static char* Prompt(EditLine* editor) { return Self(editor)->prompt_.data(); }

  static unsigned char Clear(EditLine* editor, int) {
    const LineInfo* info = ::el_line(editor);
    ::el_cursor(editor, static_cast<int>(info->lastchar - info->cursor));
    ::el_deletestr(editor, static_cast<int>(info->lastchar - info->buffer));
    std::fputs("^C\n", Self(editor)->out_);
    return CC_REDISPLAY;
  }

  static unsigned char Complete(EditLine* editor, int) {
    EditlineEditor* self = Self(editor);
    if (!self->completer_) return CC_ERROR;
    const LineInfo* info = ::el_line(editor);
    const absl::string_view before(
        info->buffer, static_cast<size_t>(info->cursor - info->buffer));
    size_t word_start = before.size();
    std::vector<std::string> candidates = self->completer_(before, &word_start);
    const absl::string_view word = before.substr(word_start);
    candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                    [&](const std::string& candidate) {
                                      return !absl::StartsWith(candidate, word);
                                    }),
                     candidates.end());
    if (candidates.empty()) return CC_ERROR;
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()),
                     candidates.end());
    std::string insert = CommonPrefix(candidates).substr(word.size());
    // A whole command is followed by its space, ready for the argument.
    if (candidates.size() == 1 && word_start == 0) insert += " ";
    if (!insert.empty()) {
      ::el_insertstr(editor, insert.c_str());
      return CC_REFRESH;
    }
    // Nothing to add: show the choices under the line, then the line again.
    std::string list = "\n";
    for (const std::string& candidate : candidates) {
      absl::StrAppend(&list, candidate, "\n");
    }
    std::fwrite(list.data(), 1, list.size(), self->out_);
    return CC_REDISPLAY;
  }

  const int in_fd_;
  std::FILE* const out_;
  const std::string history_path_;
  const Completer completer_;
  std::string prompt_;
  ::History* history_ = nullptr;
  EditLine* editor_ = nullptr;
};

}  // namespace

bool ReadPlainLine(std::FILE* in, std::string* line) {
  char* buffer = nullptr;
  size_t capacity = 0;
  ssize_t n = ::getline(&buffer, &capacity, in);
  if (n < 0) {
    std::free(buffer);
    return false;
  }
  line->assign(buffer, static_cast<size_t>(n));
  std::free(buffer);
  while (!line->empty() && (line->back() == '\n' || line->back() == '\r')) {
    line->pop_back();
  }
  return true;
}

std::string DefaultHistoryPath() { return StateFilePath("history"); }

std::unique_ptr<LineEditor> LineEditor::Create(std::FILE* in, std::FILE* out,
                                               std::FILE* err,
                                               std::string history_path,
                                               Completer completer) {
  if (::isatty(::fileno(in)) && ::isatty(::fileno(out))) {
    return std::make_unique<EditlineEditor>(
        in, out, err, std::move(history_path), std::move(completer));
  }
  return std::make_unique<PlainEditor>(in, out);
}

}  // namespace pcfs
