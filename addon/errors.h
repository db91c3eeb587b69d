// Errors: every failure becomes a JS BpfkitError built by the JS factory that lib/
// hands to the addon at load (setErrorFactory), so C++ and JS share one error family
// and every kernel failure keeps its errno and syscall.
#pragma once
#include <napi.h>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bpfkit {

// A failure recorded off the JS thread (AsyncWorker::Execute) or on it; turned into
// a JS error later by ToJs. `code` overrides the errno-derived code when set.
struct Failure {
  bool failed = false;
  int err = 0;
  std::string syscall;
  std::string message;
  std::string code;                                     // optional BpfkitError code, e.g. "ERR_VERIFIER"
  std::string log;                                      // verifier log
  std::string program;                                  // program the log belongs to
  std::vector<std::pair<std::string, double>> details;  // e.g. {"count", partial count}

  void Set(int errnum, const std::string& sc, const std::string& msg, const std::string& c = "") {
    failed = true;
    err = errnum < 0 ? -errnum : errnum;
    syscall = sc;
    message = msg;
    code = c;
  }
  Napi::Error ToJs(Napi::Env env) const;
  [[noreturn]] void Throw(Napi::Env env) const { throw ToJs(env); }
};

Napi::Error MakeError(Napi::Env env, int err, const std::string& syscall, const std::string& message,
                      const std::string& code = "");
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& message,
                             const std::string& code = "");
[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& field, const std::string& message);

// libbpf's own messages (warnings) for the current thread: captured while a
// LibbpfCapture is alive, so they can be attached to the error they explain.
class LibbpfCapture {
 public:
  LibbpfCapture();
  ~LibbpfCapture();
  const std::string& Text() const;
  // The verifier log between libbpf's BEGIN/END PROG LOAD LOG markers, and the
  // program it belongs to (empty when there is none).
  std::string VerifierLog(std::string* program) const;
  // Last libbpf warning line, for error messages.
  std::string LastLine() const;

 private:
  std::string* prev_;
  std::string text_;
};

void InitLibbpfPrint();

// Per-environment addon state: the JS error factory and the constructors of the
// wrapped classes (so one class can create another's instances from C++).
struct AddonData {
  Napi::FunctionReference factory;
  std::unordered_map<std::string, Napi::FunctionReference> ctors;
};
AddonData* GetData(Napi::Env env);
// New instance of a registered wrapped class, taking ownership of `fd`.
Napi::Object NewWrapped(Napi::Env env, const std::string& cls, int fd);

}  // namespace bpfkit
