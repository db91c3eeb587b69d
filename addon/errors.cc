#include "errors.h"

#include <bpf/libbpf.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "registry.h"

namespace bpfkit {

namespace {

AddonData* Data(Napi::Env env) { return GetData(env); }

thread_local std::string* g_capture = nullptr;
bool g_debug = false;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !g_debug) return 0;
  char small[1024];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(small, sizeof small, fmt, copy);
  va_end(copy);
  std::string line;
  if (n >= 0 && static_cast<size_t>(n) < sizeof small) {
    line.assign(small, n);
  } else if (n >= 0) {
    line.resize(static_cast<size_t>(n) + 1);
    vsnprintf(line.data(), line.size(), fmt, args);
    line.resize(static_cast<size_t>(n));
  }
  if (g_capture) g_capture->append(line);
  if (g_debug) fputs(line.c_str(), stderr);
  return 0;
}

Napi::Value SetErrorFactory(const Napi::CallbackInfo& info) {
  Data(info.Env())->factory = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

void Init(Napi::Env env, Napi::Object exports) {
  InitLibbpfPrint();
  exports.Set("setErrorFactory", Napi::Function::New(env, SetErrorFactory));
}

}  // namespace

AddonData* GetData(Napi::Env env) {
  auto* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData(d);
  }
  return d;
}

Napi::Object NewWrapped(Napi::Env env, const std::string& cls, int fd) {
  auto& ctor = GetData(env)->ctors.at(cls);
  return ctor.New({Napi::Number::New(env, fd)});
}

void InitLibbpfPrint() {
  const char* dbg = getenv("BPFKIT_DEBUG");
  g_debug = dbg && *dbg && *dbg != '0';
  libbpf_set_print(LibbpfPrint);
}

LibbpfCapture::LibbpfCapture() : prev_(g_capture) { g_capture = &text_; }
LibbpfCapture::~LibbpfCapture() { g_capture = prev_; }
const std::string& LibbpfCapture::Text() const { return text_; }

std::string LibbpfCapture::VerifierLog(std::string* program) const {
  static const std::string kBegin = "-- BEGIN PROG LOAD LOG --\n";
  static const std::string kEnd = "-- END PROG LOAD LOG --";
  size_t b = text_.find(kBegin);
  if (b == std::string::npos) return "";
  size_t e = text_.find(kEnd, b);
  if (program) {
    // libbpf writes "prog 'NAME': -- BEGIN PROG LOAD LOG --"
    size_t q2 = text_.rfind("': ", b);
    size_t q1 = q2 == std::string::npos ? std::string::npos : text_.rfind("prog '", q2);
    if (q1 != std::string::npos) *program = text_.substr(q1 + 6, q2 - q1 - 6);
  }
  size_t start = b + kBegin.size();
  return text_.substr(start, e == std::string::npos ? std::string::npos : e - start);
}

std::string LibbpfCapture::LastLine() const {
  std::string t = text_;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  size_t nl = t.rfind('\n');
  std::string line = nl == std::string::npos ? t : t.substr(nl + 1);
  if (line.rfind("libbpf: ", 0) == 0) line = line.substr(8);
  return line;
}

Napi::Error Failure::ToJs(Napi::Env env) const {
  Napi::EscapableHandleScope scope(env);
  auto* d = Data(env);
  if (d->factory.IsEmpty()) {
    return Napi::Error::New(env, message + " (" + syscall + " errno " + std::to_string(err) + ")");
  }
  Napi::Object extra = Napi::Object::New(env);
  if (!code.empty()) extra.Set("code", code);
  if (!log.empty()) extra.Set("log", log);
  if (!program.empty()) extra.Set("program", program);
  if (!details.empty()) {
    Napi::Object det = Napi::Object::New(env);
    for (auto& kv : details) det.Set(kv.first, kv.second);
    extra.Set("details", det);
  }
  Napi::Value v = d->factory.Call(
      {Napi::Number::New(env, err), Napi::String::New(env, syscall), Napi::String::New(env, message), extra});
  return Napi::Error(env, scope.Escape(v));
}

Napi::Error MakeError(Napi::Env env, int err, const std::string& syscall, const std::string& message,
                      const std::string& code) {
  Failure f;
  f.Set(err, syscall, message, code);
  return f.ToJs(env);
}

void ThrowErrno(Napi::Env env, int err, const std::string& syscall, const std::string& message,
                const std::string& code) {
  throw MakeError(env, err, syscall, message, code);
}

void ThrowInvalid(Napi::Env env, const std::string& field, const std::string& message) {
  throw MakeError(env, 22, "", field + ": " + message, "ERR_INVALID_ARGUMENT");
}

BPFKIT_REGISTER(Init);

}  // namespace bpfkit
