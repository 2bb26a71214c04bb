/** The jobwire release this SDK belongs to: package.json's version (the
 *  repository's VERSION file; CTest's version_test checks that they agree).
 *  The compiled file is dist/<dir>/version.js, two levels below package.json. */
export const VERSION: string = require("../../package.json").version;
