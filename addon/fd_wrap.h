// FdWrap<T>: base of every wrapper that owns one BPF file descriptor (map, program,
// link). Constructed from JS with the fd to adopt; closes it on close() or when the
// wrapper is garbage collected, so a dropped object never leaks a kernel object.
#pragma once
#include <bpf/bpf.h>
#include <napi.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "errors.h"
#include "util.h"

namespace bpfkit {

template <typename T>
class FdWrap : public Napi::ObjectWrap<T> {
 public:
  FdWrap(const Napi::CallbackInfo& info, const char* what) : Napi::ObjectWrap<T>(info), what_(what) {
    if (!info[0].IsNumber()) ThrowInvalid(info.Env(), "fd", "internal constructor expects a file descriptor");
    fd_ = info[0].As<Napi::Number>().Int32Value();
  }
  ~FdWrap() override { CloseFd(); }

  int fd() const { return fd_; }

 protected:
  int LiveFd(Napi::Env env) const {
    if (fd_ < 0) ThrowErrno(env, EBADF, "", std::string(what_) + " is closed", "ERR_CLOSED");
    return fd_;
  }
  void CloseFd() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), fd_); }
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseFd();
    return info.Env().Undefined();
  }
  // pin(path): pins the object on a BPF filesystem.
  Napi::Value Pin(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int fd = LiveFd(env);
    std::string path = info[0].As<Napi::String>().Utf8Value();
    Failure f;
    if (!CheckBpffs(path, &f)) f.Throw(env);
    if (bpf_obj_pin(fd, path.c_str()) < 0) {
      int e = errno;
      ThrowErrno(env, e, "bpf(BPF_OBJ_PIN)", "cannot pin " + std::string(what_) + " at '" + path + "'",
                 e == EEXIST ? "ERR_EXISTS" : "");
    }
    return env.Undefined();
  }

  using Base = Napi::ObjectWrap<T>;
  static typename Base::PropertyDescriptor FdAccessor() {
    return Base::InstanceAccessor("fd", static_cast<typename Base::InstanceGetterCallback>(&FdWrap::GetFd), nullptr);
  }
  static typename Base::PropertyDescriptor PinMethod() {
    return Base::InstanceMethod("pin", static_cast<typename Base::InstanceMethodCallback>(&FdWrap::Pin));
  }
  static typename Base::PropertyDescriptor CloseMethod() {
    return Base::InstanceMethod("close", static_cast<typename Base::InstanceMethodCallback>(&FdWrap::Close));
  }

  int fd_ = -1;
  const char* what_;
};

// The native object (map/program/link wrapper) behind a JS value, or nullptr.
template <typename T>
T* Unwrap(const Napi::Value& v) {
  if (!v.IsObject()) return nullptr;
  return Napi::ObjectWrap<T>::Unwrap(v.As<Napi::Object>());
}

}  // namespace bpfkit
