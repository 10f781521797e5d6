// Start kinesalite on loopback only (its command line listens on every
// interface): node kinesalite.js [PORT [DIR]]. Port 0 picks a free port;
// with DIR the streams live in LevelDB there and survive a restart. Prints
// "listening <port>" once it accepts connections; runs until killed.
var port = +(process.argv[2] || 0)
var options = {createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100}
if (process.argv[3]) options.path = process.argv[3]
var server = require('kinesalite')(options)
server.listen(port, '127.0.0.1', function () {
  console.log('listening ' + server.address().port)
})
