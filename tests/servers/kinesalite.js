// Start kinesalite on loopback only (its command line listens on every
// interface): node kinesalite.js [PORT]. Port 0 picks a free port. Prints
// "listening <port>" once it accepts connections; runs until killed.
var port = +(process.argv[2] || 0)
var server = require('kinesalite')({
  createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100,
})
server.listen(port, '127.0.0.1', function () {
  console.log('listening ' + server.address().port)
})
