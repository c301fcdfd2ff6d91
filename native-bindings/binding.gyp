{
  "targets": [
    {
      "target_name": "stratafs_native",
      "sources": [
        "src/addon.c",
        "src/args.c",
        "src/errors.c",
        "src/device.c",
        "src/reader.c",
        "src/syscalls.c",
        "src/stat.c",
        "src/xattr.c",
        "src/copy.c",
        "src/socket.c",
        "src/memory.cc"
      ],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=gnu11"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      }
    }
  ]
}
