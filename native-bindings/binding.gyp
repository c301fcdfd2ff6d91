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
        "src/socket.c"
      ],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra"],
      "configurations": {
        "Release": {
          "cflags!": ["-O3"],
          "cflags": ["-O2"]
        }
      }
    }
  ]
}
