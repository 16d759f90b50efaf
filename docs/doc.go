// Package docs holds Signet's longer documents; its test keeps the code
// they quote identical to the programs CI builds and tests.
package docs
