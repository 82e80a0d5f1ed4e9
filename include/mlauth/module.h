/* module.h: the program's own shared modules (mlauth-secret.so, mlauth-jwt.so), opened on demand. */
#ifndef MLAUTH_MODULE_H
#define MLAUTH_MODULE_H

#include "mlauth/err.h"

/*
 * Open file from the program's own directory (where make and make install
 * put the modules beside mlauth-helper, so a moved or staged tree finds its
 * own) and return its `symbol`, a table whose first member is an int ABI
 * number that must equal abi.  what names the module in errors ("the Secret
 * Service module"), which say to reinstall.  Never closed: a module's
 * libraries may not survive unloading (GLib's types, OpenSSL's atexit).
 */
int module_open(const char *file, const char *what, const char *symbol, int abi,
    const void **table, struct ml_err *err);

#endif
