import java.io.File;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.server.DataTree;
import org.apache.zookeeper.server.persistence.FileTxnSnapLog;

/**
 * Writes a ZooKeeper snapshot into a data directory, with ZooKeeper's own classes: the znodes
 * named on the command line (and their missing ancestors), persistent and empty, each with its
 * child counter (cversion) at the given value. A server started on that directory names its next
 * sequential child of such a znode with that value.
 *
 * Usage: java -cp ZOOKEEPER_JARS CounterSnapshot.java DATA_DIR CVERSION PATH...
 */
public class CounterSnapshot {
    public static void main(String[] args) throws Exception {
        File dir = new File(args[0]);
        int cversion = Integer.parseInt(args[1]);
        DataTree tree = new DataTree();
        long zxid = 0;
        for (int i = 2; i < args.length; i++) {
            String path = args[i];
            // Each ancestor, then the node itself.
            for (int slash = path.indexOf('/', 1); ; slash = path.indexOf('/', slash + 1)) {
                String prefix = slash < 0 ? path : path.substring(0, slash);
                if (tree.getNode(prefix) == null) {
                    zxid++;
                    tree.createNode(prefix, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, 0, -1, zxid, 1);
                }
                if (slash < 0) {
                    break;
                }
            }
            zxid++;
            tree.setCversionPzxid(path, cversion, zxid);
        }
        tree.lastProcessedZxid = zxid;
        new FileTxnSnapLog(dir, dir).save(tree, new ConcurrentHashMap<>(), true);
    }
}
